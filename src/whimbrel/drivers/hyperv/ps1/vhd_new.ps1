# New-VHD: an empty dynamically expanding VHDX.
param([string]$Path, [int64]$SizeBytes)
if (Test-Path -LiteralPath $Path) { throw "The file '$Path' already exists (ResourceExists)" }
$v = Hyper-V\New-VHD -Path $Path -SizeBytes $SizeBytes -Dynamic
$result = [pscustomobject]@{ Path = $v.Path; Size = [int64]$v.Size }
