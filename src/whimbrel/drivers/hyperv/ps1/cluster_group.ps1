# One VM role: owner node, state and whether it waits in the move queue (StatusInformation 4).
param([string]$Name)
$g = FailoverClusters\Get-ClusterGroup -Name $Name
$result = [pscustomobject]@{ Name = $g.Name; OwnerNode = $g.OwnerNode.Name; State = $g.State.ToString()
  Queued = [bool]([int64]$g.StatusInformation -band 4); Priority = [int]$g.Priority }
