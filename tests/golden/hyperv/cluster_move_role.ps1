# Move-ClusterVirtualMachineRole: live (or quick) migration inside the cluster, to a node or,
# with no node, to the node the cluster finds best. -Wait 0 returns once started; poll cluster_group.
param([string]$Name, [string]$Node = '', [ValidateSet('Live', 'Quick')][string]$MigrationType = 'Live')
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $splat = @{ Name = $Name; MigrationType = $MigrationType; Wait = 0 }
        if ($Node) { $splat.Node = $Node }
        $g = FailoverClusters\Move-ClusterVirtualMachineRole @splat
        $result = [pscustomobject]@{ Name = $g.Name; OwnerNode = $g.OwnerNode.Name; State = $g.State.ToString() }
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
