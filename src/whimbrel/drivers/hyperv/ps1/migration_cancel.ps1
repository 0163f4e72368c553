# Cancel the VM's running migration jobs (RequestStateChange 5; KillJob is not supported).
param([string]$VMId)
$jobs = @(Get-WmiObject -Namespace root\virtualization\v2 -Class Msvm_MigrationJob |
  Where-Object { $_.VirtualSystemName -eq $VMId -and $_.Cancellable -and $_.JobState -in 3, 4 })
foreach ($j in $jobs) { [void]$j.RequestStateChange(5) }
$result = [pscustomobject]@{ Cancelled = $jobs.Count }
