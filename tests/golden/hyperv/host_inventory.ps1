# The host, its migration settings and networks, its switches and local storage.
param()
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $h = Hyper-V\Get-VMHost
        $os = Get-CimInstance -ClassName Win32_OperatingSystem
        $cs = Get-CimInstance -ClassName Win32_ComputerSystem
        $cpu = @(Get-CimInstance -ClassName Win32_Processor)[0]
        $uuid = (Get-CimInstance -ClassName Win32_ComputerSystemProduct).UUID
        $vhdRoot = $h.VirtualHardDiskPath
        # A VHD root on an SMB share (\\server\share) has no drive: its space is the share's to say.
        $drive = if ($vhdRoot -match '^([A-Za-z]):') { Get-PSDrive -Name $Matches[1] -PSProvider FileSystem } else { $null }
        $result = [pscustomobject]@{
          Name = $h.Name; Fqdn = $h.FullyQualifiedDomainName; Uuid = "$uuid"
          OsVersion = $os.Version; OsBuild = [int]$os.BuildNumber
          PartOfDomain = [bool]$cs.PartOfDomain; Domain = $cs.Domain
          ProcessorName = $cpu.Name; ProcessorVendor = $cpu.Manufacturer
          LogicalProcessorCount = $h.LogicalProcessorCount
          MemoryCapacity = [int64]$h.MemoryCapacity
          FreePhysicalMemoryBytes = [int64]$os.FreePhysicalMemory * 1KB
          VirtualHardDiskPath = $vhdRoot
          VirtualHardDiskFreeBytes = if ($drive) { [int64]$drive.Free } else { 0 }
          VirtualHardDiskSizeBytes = if ($drive) { [int64]($drive.Free + $drive.Used) } else { 0 }
          VirtualMachineMigrationEnabled = $h.VirtualMachineMigrationEnabled
          MaximumVirtualMachineMigrations = [int]$h.MaximumVirtualMachineMigrations
          MaximumStorageMigrations = [int]$h.MaximumStorageMigrations
          VirtualMachineMigrationAuthenticationType = $h.VirtualMachineMigrationAuthenticationType.ToString()
          VirtualMachineMigrationPerformanceOption = $h.VirtualMachineMigrationPerformanceOption.ToString()
          UseAnyNetworkForMigration = $h.UseAnyNetworkForMigration
          SupportedVmVersions = @($h.SupportedVmVersions)
          DefaultVmVersion = (Hyper-V\Get-VMHostSupportedVersion -Default).Version.ToString()
          MigrationNetworks = @(Hyper-V\Get-VMMigrationNetwork | ForEach-Object {
            [pscustomobject]@{ Subnet = $_.Subnet; Priority = $_.Priority } })
          Addresses = @(Get-NetIPAddress -AddressFamily IPv4 | Where-Object {
              $_.PrefixOrigin -ne 'WellKnown' -and $_.IPAddress -notlike '169.254.*' } | ForEach-Object {
            "$($_.IPAddress)/$($_.PrefixLength)" })
          Switches = @(Hyper-V\Get-VMSwitch | ForEach-Object {
            [pscustomobject]@{ Name = $_.Name; Id = $_.Id.ToString(); SwitchType = $_.SwitchType.ToString() } })
          LocalAccounts = @(Get-LocalUser | Where-Object { $_.Enabled } | ForEach-Object { $_.Name })
          Clustered = [bool](Get-Service -Name ClusSvc -ErrorAction SilentlyContinue |
            Where-Object { $_.Status -eq 'Running' })
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
