# One look at a WMI job (CIM_ConcreteJob): final states are 7, 8, 9, 10 and 32768. A job is
# removed 5 minutes after it ends (TimeBeforeRemoval): then the answer is Gone.
param([string]$JobPath)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $j = $null
        try { $j = [wmi]$JobPath } catch { $j = $null }
        if (-not $j) { $result = [pscustomobject]@{ Gone = $true; JobState = 0 } } else {
        $result = [pscustomobject]@{
          JobState = [int]$j.JobState; PercentComplete = [int]$j.PercentComplete; ErrorCode = [int]$j.ErrorCode
          ErrorDescription = $j.ErrorDescription; ErrorSummaryDescription = $j.ErrorSummaryDescription
          JobType = [int]$j.JobType; ElapsedSeconds = if ($j.ElapsedTime) {
            [int64]([System.Management.ManagementDateTimeConverter]::ToTimeSpan($j.ElapsedTime).TotalSeconds) } else { 0 }
        } }
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
