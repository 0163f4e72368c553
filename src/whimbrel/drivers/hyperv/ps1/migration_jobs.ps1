# The VMMS migration jobs of one VM (any move: cmdlet, WMI or cluster), kept 5 minutes after they end.
param([string]$VMId)
$result = @(Get-CimInstance -Namespace root\virtualization\v2 -ClassName Msvm_MigrationJob |
  Where-Object { $_.VirtualSystemName -eq $VMId } | ForEach-Object { [pscustomobject]@{
    InstanceId = $_.InstanceID; JobType = [int]$_.JobType; MigrationType = [int]$_.MigrationType
    DestinationHost = $_.DestinationHost; JobState = [int]$_.JobState
    PercentComplete = [int]$_.PercentComplete; ErrorCode = [int]$_.ErrorCode
    ErrorDescription = $_.ErrorDescription; Cancellable = [bool]$_.Cancellable } })
