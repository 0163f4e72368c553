# Resume-ClusterNode: the node takes roles again; Failback NoFailback, Immediate or Policy.
param([string]$Name, [ValidateSet('NoFailback', 'Immediate', 'Policy')][string]$Failback = 'NoFailback')
$n = FailoverClusters\Resume-ClusterNode -Name $Name -Failback $Failback
$result = [pscustomobject]@{ Name = $n.Name; State = $n.State.ToString(); DrainStatus = $n.DrainStatus.ToString() }
