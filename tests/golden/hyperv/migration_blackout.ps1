# The newest "completed the live migration ... blackout time of N seconds" event of a VM
# (Hyper-V-VMMS-Admin 20415, or 20417 when the blackout was unexpectedly long).
param([string]$VMName, [int]$SinceSeconds = 900)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $filter = @{ LogName = 'Microsoft-Windows-Hyper-V-VMMS-Admin'; Id = 20415, 20417
                     StartTime = (Get-Date).AddSeconds(-$SinceSeconds) }
        $ev = @(Get-WinEvent -FilterHashtable $filter -ErrorAction SilentlyContinue |
                Where-Object { $_.Message -like "*'$VMName'*" } | Select-Object -First 1)
        $result = if ($ev.Count -gt 0) { [pscustomobject]@{ Id = $ev[0].Id
          TimeCreated = $ev[0].TimeCreated.ToString('o'); Message = $ev[0].Message } } else { $null }
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
