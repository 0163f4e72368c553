# Move-VM: the offline move of a stopped or saved VM (configuration, and storage when asked).
param([string]$Name, [string]$DestinationHost, [bool]$IncludeStorage = $false,
      [string]$DestinationStoragePath = '')
$splat = @{ Name = $Name; DestinationHost = $DestinationHost }
if ($IncludeStorage) { $splat.IncludeStorage = $true; $splat.DestinationStoragePath = $DestinationStoragePath }
# The cmdlet may write a VMCompatibilityReport to the output before it throws: kept out of
# the answer, whose only output is the envelope's JSON.
$null = Hyper-V\Move-VM @splat
$result = [pscustomobject]@{ Moved = $Name; DestinationHost = $DestinationHost }
