# Remove the VM's cluster group with its resources; the VM itself stays on its node.
param([string]$VMName)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $g = @(FailoverClusters\Get-ClusterGroup | Where-Object {
          $_.GroupType.ToString() -eq 'VirtualMachine' -and $_.Name -eq $VMName })
        foreach ($x in $g) { FailoverClusters\Remove-ClusterGroup -InputObject $x -RemoveResources -Force }
        $result = [pscustomobject]@{ Removed = $g.Count }
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
