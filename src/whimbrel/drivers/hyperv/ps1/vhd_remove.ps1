# Delete a disk image; a missing one is not an error.
param([string]$Path)
$there = Test-Path -LiteralPath $Path
if ($there) { Remove-Item -LiteralPath $Path -Force }
$result = [pscustomobject]@{ Path = $Path; Removed = $there }
