# Remove the VM's cluster group with its resources; the VM itself stays on its node.
param([string]$VMName)
$g = @(FailoverClusters\Get-ClusterGroup | Where-Object {
  $_.GroupType.ToString() -eq 'VirtualMachine' -and $_.Name -eq $VMName })
foreach ($x in $g) { FailoverClusters\Remove-ClusterGroup -InputObject $x -RemoveResources -Force }
$result = [pscustomobject]@{ Removed = $g.Count }
