# One cluster node: Up, Down, Paused or Joining, and how its drain went.
param([string]$Name)
$n = FailoverClusters\Get-ClusterNode -Name $Name
$result = [pscustomobject]@{ Name = $n.Name; State = $n.State.ToString(); DrainStatus = $n.DrainStatus.ToString()
  StatusInformation = [int64]$n.StatusInformation }
