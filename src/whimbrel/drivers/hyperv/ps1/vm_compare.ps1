# Compare-VM: what would stop this VM from moving to the destination, as Hyper-V sees it.
param([string]$Name, [string]$DestinationHost, [bool]$IncludeStorage = $false,
      [string]$DestinationStoragePath = '')
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
