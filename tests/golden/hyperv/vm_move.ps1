# Move-VM: the offline move of a stopped or saved VM (configuration, and storage when asked).
param([string]$Name, [string]$DestinationHost, [bool]$IncludeStorage = $false,
      [string]$DestinationStoragePath = '')
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $splat = @{ Name = $Name; DestinationHost = $DestinationHost }
        if ($IncludeStorage) { $splat.IncludeStorage = $true; $splat.DestinationStoragePath = $DestinationStoragePath }
        # The cmdlet may write a VMCompatibilityReport to the output before it throws: kept out of
        # the answer, whose only output is the envelope's JSON.
        $null = Hyper-V\Move-VM @splat
        $result = [pscustomobject]@{ Moved = $Name; DestinationHost = $DestinationHost }
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
