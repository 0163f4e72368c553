# Point a VM's SCSI disks (by controller location) at other files.
param([string]$Name, [hashtable]$Paths)
foreach ($loc in $Paths.Keys) {
  Hyper-V\Set-VMHardDiskDrive -VMName $Name -ControllerType SCSI -ControllerNumber 0 `
    -ControllerLocation ([int]$loc) -Path $Paths[$loc]
}
$result = [pscustomobject]@{ Name = $Name; Count = $Paths.Count }
