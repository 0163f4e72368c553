# Move-ClusterVirtualMachineRole: live (or quick) migration inside the cluster, to a node or,
# with no node, to the node the cluster finds best. -Wait 0 returns once started; poll cluster_group.
param([string]$Name, [string]$Node = '', [ValidateSet('Live', 'Quick')][string]$MigrationType = 'Live')
$splat = @{ Name = $Name; MigrationType = $MigrationType; Wait = 0 }
if ($Node) { $splat.Node = $Node }
$g = FailoverClusters\Move-ClusterVirtualMachineRole @splat
$result = [pscustomobject]@{ Name = $g.Name; OwnerNode = $g.OwnerNode.Name; State = $g.State.ToString() }
