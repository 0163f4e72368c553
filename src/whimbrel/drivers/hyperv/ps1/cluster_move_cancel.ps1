# Cancel a VM role's live migration in progress; the VM stays on its owner node.
param([string]$Name)
[void](FailoverClusters\Move-ClusterVirtualMachineRole -Name $Name -Cancel)
$result = [pscustomobject]@{ Cancelled = $Name }
