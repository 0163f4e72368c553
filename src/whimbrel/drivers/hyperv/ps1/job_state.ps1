# One look at a WMI job (CIM_ConcreteJob): final states are 7, 8, 9, 10 and 32768.
param([string]$JobPath)
$j = [wmi]$JobPath
$result = [pscustomobject]@{
  JobState = [int]$j.JobState; PercentComplete = [int]$j.PercentComplete; ErrorCode = [int]$j.ErrorCode
  ErrorDescription = $j.ErrorDescription; ErrorSummaryDescription = $j.ErrorSummaryDescription
  JobType = [int]$j.JobType; ElapsedSeconds = if ($j.ElapsedTime) {
    [int64]([System.Management.ManagementDateTimeConverter]::ToTimeSpan($j.ElapsedTime).TotalSeconds) } else { 0 }
}
