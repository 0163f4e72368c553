# The WMI path of a move started remotely: Msvm_VirtualSystemMigrationService.MigrateVirtualSystemToHost.
# MigrationType 32768 VirtualSystem, 32769 Storage, 32770 Staged, 32771 VirtualSystemAndStorage;
# TransportType 5 TCP or 32768 SMB. Returns the job to poll (job_state.ps1).
param([string]$Name, [string]$DestinationHost,
      [ValidateSet(32768, 32769, 32770, 32771)][int]$MigrationType = 32768,
      [ValidateSet(5, 32768)][int]$TransportType = 5, [bool]$Compress = $true,
      [string]$DataRoot = '', [hashtable]$Vhds = @{})
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $ns = 'root\virtualization\v2'
        $vm = @(Get-WmiObject -Namespace $ns -Class Msvm_ComputerSystem |
                Where-Object { $_.Caption -eq 'Virtual Machine' -and $_.ElementName -eq $Name })
        if ($vm.Count -ne 1) { throw "VM '$Name' not found or ambiguous (ObjectNotFound)" }
        $vm = $vm[0]
        $svc = Get-WmiObject -Namespace $ns -Class Msvm_VirtualSystemMigrationService
        $msd = ([wmiclass]"\\.\${ns}:Msvm_VirtualSystemMigrationSettingData").CreateInstance()
        $msd.MigrationType = [uint16]$MigrationType
        $msd.TransportType = [uint16]$TransportType
        $msd.EnableCompression = $Compress
        $in = $svc.GetMethodParameters('MigrateVirtualSystemToHost')
        $in.ComputerSystem = $vm.__PATH
        if ($MigrationType -ne 32769) { $in.DestinationHost = $DestinationHost }
        $in.MigrationSettingData = $msd.GetText([System.Management.TextFormat]::CimDtd20)
        $vssd = @($vm.GetRelated('Msvm_VirtualSystemSettingData') |
                  Where-Object { $_.VirtualSystemType -eq 'Microsoft:Hyper-V:System:Realized' })[0]
        if ($DataRoot) {
          $vssd.ConfigurationDataRoot = $DataRoot; $vssd.SnapshotDataRoot = $DataRoot; $vssd.SwapFileDataRoot = $DataRoot
          $in.NewSystemSettingData = $vssd.GetText([System.Management.TextFormat]::CimDtd20)
        }
        if ($Vhds.Count -gt 0) {
          $in.NewResourceSettingData = @($vssd.GetRelated('Msvm_StorageAllocationSettingData') |
            Where-Object { $_.ResourceSubType -eq 'Microsoft:Hyper-V:Virtual Hard Disk' } | ForEach-Object {
              $src = $_.HostResource[0]
              if ($Vhds.ContainsKey($src)) { $_.HostResource = @($Vhds[$src]) }
              $_.GetText([System.Management.TextFormat]::CimDtd20) })
        }
        $out = $svc.InvokeMethod('MigrateVirtualSystemToHost', $in, $null)
        $result = [pscustomobject]@{ ReturnValue = [int]$out.ReturnValue; Job = "$($out.Job)"; VMId = $vm.Name }
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
