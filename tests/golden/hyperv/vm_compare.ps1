# Compare-VM: what would stop this VM from moving to the destination, as Hyper-V sees it.
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
        $r = Hyper-V\Compare-VM @splat
        $result = [pscustomobject]@{
          OperationType = $r.OperationType.ToString(); Destination = $r.Destination
          Incompatibilities = @($r.Incompatibilities | ForEach-Object { [pscustomobject]@{
            MessageId = [int64]$_.MessageId; Message = $_.Message
            SourceType = if ($_.Source) { $_.Source.GetType().Name } else { $null }
            Source = "$($_.Source)" } })
        }
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
