# Cancel the VM's running migration jobs: RequestStateChange 4 (Terminate, the clean stop;
# 5 would be Kill). A job the host refuses to stop is reported, not counted.
param([string]$VMId)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $jobs = @(Get-WmiObject -Namespace root\virtualization\v2 -Class Msvm_MigrationJob |
          Where-Object { $_.VirtualSystemName -eq $VMId -and $_.Cancellable -and $_.JobState -in 3, 4 })
        $refused = @()
        foreach ($j in $jobs) {
          $rc = $j.RequestStateChange(4).ReturnValue
          if ($rc -notin 0, 4096) { $refused += "$($j.InstanceID): $rc" }
        }
        $result = [pscustomobject]@{ Cancelled = $jobs.Count - $refused.Count; Refused = $refused }
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
