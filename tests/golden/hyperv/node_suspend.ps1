# Suspend-ClusterNode: pause this node (no role moves onto it); with -Drain the cluster
# also moves what is left on it. Without -Wait it returns at once; poll node_state.
param([string]$Name, [bool]$Drain = $false)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $n = if ($Drain) { FailoverClusters\Suspend-ClusterNode -Name $Name -Drain } else { FailoverClusters\Suspend-ClusterNode -Name $Name }
        $result = [pscustomobject]@{ Name = $n.Name; State = $n.State.ToString(); DrainStatus = $n.DrainStatus.ToString() }
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
