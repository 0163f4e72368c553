# VMs with state, memory, configuration version, processor compatibility, disks and switches.
param([string]$Name = '')
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
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
