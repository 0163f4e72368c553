# Move-VM: the offline move of a stopped or saved VM (configuration, and storage when asked).
param([string]$Name, [string]$DestinationHost, [bool]$IncludeStorage = $false,
      [string]$DestinationStoragePath = '')
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    $splat = @{ Name = $Name; DestinationHost = $DestinationHost }
    if ($IncludeStorage) { $splat.IncludeStorage = $true; $splat.DestinationStoragePath = $DestinationStoragePath }
    Hyper-V\Move-VM @splat
    $result = [pscustomobject]@{ Moved = $Name; DestinationHost = $DestinationHost }
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
