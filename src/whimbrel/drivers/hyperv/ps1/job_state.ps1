# One look at a WMI job (CIM_ConcreteJob): final states are 7, 8, 9, 10 and 32768. A job is
# removed 5 minutes after it ends (TimeBeforeRemoval): then the answer is Gone.
param([string]$JobPath)
$j = $null
try { $j = [wmi]$JobPath } catch { $j = $null }
if (-not $j) { $result = [pscustomobject]@{ Gone = $true; JobState = 0 } } else {
$result = [pscustomobject]@{
  JobState = [int]$j.JobState; PercentComplete = [int]$j.PercentComplete; ErrorCode = [int]$j.ErrorCode
  ErrorDescription = $j.ErrorDescription; ErrorSummaryDescription = $j.ErrorSummaryDescription
  JobType = [int]$j.JobType; ElapsedSeconds = if ($j.ElapsedTime) {
    [int64]([System.Management.ManagementDateTimeConverter]::ToTimeSpan($j.ElapsedTime).TotalSeconds) } else { 0 }
} }
