# One VM role: owner node, state and whether it waits in the move queue (StatusInformation 4).
param([string]$Name)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $g = FailoverClusters\Get-ClusterGroup -Name $Name
        $result = [pscustomobject]@{ Name = $g.Name; OwnerNode = $g.OwnerNode.Name; State = $g.State.ToString()
          Queued = [bool]([int64]$g.StatusInformation -band 4); Priority = [int]$g.Priority }
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
