# The VMMS migration jobs of one VM (any move: cmdlet, WMI or cluster), kept 5 minutes after they end.
param([string]$VMId)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $result = @(Get-CimInstance -Namespace root\virtualization\v2 -ClassName Msvm_MigrationJob |
          Where-Object { $_.VirtualSystemName -eq $VMId } | ForEach-Object { [pscustomobject]@{
            InstanceId = $_.InstanceID; JobType = [int]$_.JobType; MigrationType = [int]$_.MigrationType
            DestinationHost = $_.DestinationHost; JobState = [int]$_.JobState
            PercentComplete = [int]$_.PercentComplete; ErrorCode = [int]$_.ErrorCode
            ErrorDescription = $_.ErrorDescription; Cancellable = [bool]$_.Cancellable } })
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
