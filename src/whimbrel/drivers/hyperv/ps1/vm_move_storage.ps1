# Move-VMStorage: copy a running VM's disks to new paths on this host and switch to them.
param([string]$Name, [hashtable[]]$Vhds)
Hyper-V\Move-VMStorage -VM (Hyper-V\Get-VM -Name $Name) -Vhds $Vhds
$result = [pscustomobject]@{ Moved = @($Vhds | ForEach-Object { $_.DestinationFilePath }) }
