# Cancel the VM's running migration jobs (RequestStateChange 5; KillJob is not supported).
param([string]$VMId)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    $jobs = @(Get-WmiObject -Namespace root\virtualization\v2 -Class Msvm_MigrationJob |
      Where-Object { $_.VirtualSystemName -eq $VMId -and $_.Cancellable -and $_.JobState -in 3, 4 })
    foreach ($j in $jobs) { [void]$j.RequestStateChange(5) }
    $result = [pscustomobject]@{ Cancelled = $jobs.Count }
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
