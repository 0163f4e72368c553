# Cancel a VM role's live migration in progress; the VM stays on its owner node.
param([string]$Name)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    [void](FailoverClusters\Move-ClusterVirtualMachineRole -Name $Name -Cancel)
    $result = [pscustomobject]@{ Cancelled = $Name }
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
