# VMs with state, memory, configuration version, processor compatibility, disks and switches.
param([string]$Name = '')
$vms = if ($Name) { @(Hyper-V\Get-VM | Where-Object { $_.Name -eq $Name }) } else { @(Hyper-V\Get-VM) }
$result = @($vms | ForEach-Object { $vm = $_
  $cpu = Hyper-V\Get-VMProcessor -VM $vm
  [pscustomobject]@{
    Name = $vm.Name; Id = $vm.Id.ToString(); State = $vm.State.ToString()
    Generation = [int]$vm.Generation; Version = $vm.Version; IsClustered = [bool]$vm.IsClustered
    ProcessorCount = [int]$vm.ProcessorCount
    MemoryAssigned = [int64]$vm.MemoryAssigned; MemoryStartup = [int64]$vm.MemoryStartup
    UptimeSeconds = [int64]$vm.Uptime.TotalSeconds
    Path = $vm.Path
    CompatibilityForMigrationEnabled = [bool]$cpu.CompatibilityForMigrationEnabled
    Disks = @(Hyper-V\Get-VMHardDiskDrive -VM $vm | ForEach-Object { [pscustomobject]@{
      Path = $_.Path; ControllerType = $_.ControllerType.ToString()
      ControllerNumber = [int]$_.ControllerNumber; ControllerLocation = [int]$_.ControllerLocation } })
    NetworkAdapters = @($vm.NetworkAdapters | ForEach-Object { [pscustomobject]@{
      Name = $_.Name; SwitchName = $_.SwitchName; MacAddress = $_.MacAddress } })
  } })
