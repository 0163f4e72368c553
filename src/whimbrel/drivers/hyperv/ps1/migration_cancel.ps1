# Cancel the VM's running migration jobs: RequestStateChange 4 (Terminate, the clean stop;
# 5 would be Kill). A job the host refuses to stop is reported, not counted.
param([string]$VMId)
$jobs = @(Get-WmiObject -Namespace root\virtualization\v2 -Class Msvm_MigrationJob |
  Where-Object { $_.VirtualSystemName -eq $VMId -and $_.Cancellable -and $_.JobState -in 3, 4 })
$refused = @()
foreach ($j in $jobs) {
  $rc = $j.RequestStateChange(4).ReturnValue
  if ($rc -notin 0, 4096) { $refused += "$($j.InstanceID): $rc" }
}
$result = [pscustomobject]@{ Cancelled = $jobs.Count - $refused.Count; Refused = $refused }
