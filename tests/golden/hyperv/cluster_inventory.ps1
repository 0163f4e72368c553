# The failover cluster this node belongs to: nodes, VM roles, shared volumes.
param()
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $c = FailoverClusters\Get-Cluster
        $result = [pscustomobject]@{
          Cluster = $c.Name; Domain = $c.Domain
          MaximumParallelMigrations = [int]$c.MaximumParallelMigrations
          Nodes = @(FailoverClusters\Get-ClusterNode | ForEach-Object {
            [pscustomobject]@{ Name = $_.Name; Id = "$($_.Id)"; State = $_.State.ToString()
              DrainStatus = $_.DrainStatus.ToString(); StatusInformation = [int64]$_.StatusInformation } })
          VmGroups = @(FailoverClusters\Get-ClusterGroup | Where-Object { $_.GroupType.ToString() -eq 'VirtualMachine' } |
            ForEach-Object { [pscustomobject]@{ Name = $_.Name; Id = "$($_.Id)"; OwnerNode = $_.OwnerNode.Name
              State = $_.State.ToString(); Queued = [bool]([int64]$_.StatusInformation -band 4)
              Priority = [int]$_.Priority } })
          Csvs = @(FailoverClusters\Get-ClusterSharedVolume | ForEach-Object { $v = $_
            [pscustomobject]@{ Name = $v.Name; State = $v.State.ToString(); OwnerNode = $v.OwnerNode.Name
              Volumes = @($v.SharedVolumeInfo | ForEach-Object { [pscustomobject]@{
                Path = $_.FriendlyVolumeName; Size = [int64]$_.Partition.Size
                FreeSpace = [int64]$_.Partition.FreeSpace } }) } })
        }
    }
    $answer = [pscustomobject]@{ ok = $true; data = $result }
    ConvertTo-Json -Compress -Depth 6 -InputObject $answer
} catch {
    $e = $_
    ConvertTo-Json -Compress -Depth 4 -InputObject ([pscustomobject]@{
        ok = $false
        error = [pscustomobject]@{
            message = $e.Exception.Message
            type = $e.Exception.GetType().FullName
            hresult = $e.Exception.HResult
            fqid = $e.FullyQualifiedErrorId
            category = $e.CategoryInfo.Category.ToString()
            inner = if ($e.Exception.InnerException) {
                $e.Exception.InnerException.Message
            } else { $null }
        }
    })
}
