# Remove-VM: forget a stopped VM (its disks stay); a VM this host does not know is not an error.
param([string]$Name)
$vm = @(Hyper-V\Get-VM | Where-Object { $_.Name -eq $Name })
foreach ($v in $vm) { Hyper-V\Remove-VM -VM $v -Force }
$result = [pscustomobject]@{ Removed = $vm.Count }
