# Add-ClusterVirtualMachineRole (Hyper-V's workgroup clusters): the VM becomes highly available;
# a VM that already is a role keeps it. Priority 3000 high, 2000 medium, 1000 low, 0 no auto start.
param([string]$VMName, [ValidateSet(0, 1000, 2000, 3000)][int]$Priority = 2000)
$g = @(FailoverClusters\Get-ClusterGroup | Where-Object {
  $_.GroupType.ToString() -eq 'VirtualMachine' -and $_.Name -eq $VMName })
$g = if ($g.Count -gt 0) { $g[0] } else { FailoverClusters\Add-ClusterVirtualMachineRole -VirtualMachine $VMName }
$g.Priority = $Priority
$result = [pscustomobject]@{ Name = $g.Name; OwnerNode = $g.OwnerNode.Name; State = $g.State.ToString()
  Priority = [int]$g.Priority }
