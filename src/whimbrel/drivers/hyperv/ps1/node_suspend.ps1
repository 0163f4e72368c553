# Suspend-ClusterNode: pause this node (no role moves onto it); with -Drain the cluster
# also moves what is left on it. Without -Wait it returns at once; poll node_state.
param([string]$Name, [bool]$Drain = $false)
$n = if ($Drain) { FailoverClusters\Suspend-ClusterNode -Name $Name -Drain } else { FailoverClusters\Suspend-ClusterNode -Name $Name }
$result = [pscustomobject]@{ Name = $n.Name; State = $n.State.ToString(); DrainStatus = $n.DrainStatus.ToString() }
