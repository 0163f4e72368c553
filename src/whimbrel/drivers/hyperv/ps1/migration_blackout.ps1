# The newest "completed the live migration ... blackout time of N seconds" event of a VM
# (Hyper-V-VMMS-Admin 20415, or 20417 when the blackout was unexpectedly long).
param([string]$VMName, [int]$SinceSeconds = 900)
$filter = @{ LogName = 'Microsoft-Windows-Hyper-V-VMMS-Admin'; Id = 20415, 20417
             StartTime = (Get-Date).AddSeconds(-$SinceSeconds) }
$ev = @(Get-WinEvent -FilterHashtable $filter -ErrorAction SilentlyContinue |
        Where-Object { $_.Message -like "*'$VMName'*" } | Select-Object -First 1)
$result = if ($ev.Count -gt 0) { [pscustomobject]@{ Id = $ev[0].Id
  TimeCreated = $ev[0].TimeCreated.ToString('o'); Message = $ev[0].Message } } else { $null }
