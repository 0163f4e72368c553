# Move-VM: the offline move of a stopped or saved VM (configuration, and storage when asked).
param([string]$Name, [string]$DestinationHost, [bool]$IncludeStorage = $false,
      [string]$DestinationStoragePath = '')
$splat = @{ Name = $Name; DestinationHost = $DestinationHost }
if ($IncludeStorage) { $splat.IncludeStorage = $true; $splat.DestinationStoragePath = $DestinationStoragePath }
Hyper-V\Move-VM @splat
$result = [pscustomobject]@{ Moved = $Name; DestinationHost = $DestinationHost }
