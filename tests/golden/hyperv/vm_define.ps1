# New-VM with its disks (SCSI 0, in order) and one adapter per switch; not started.
param([string]$Name, [int64]$MemoryBytes, [int]$ProcessorCount, [string]$Version,
      [string]$Path, [string[]]$Disks = @(), [string[]]$Switches = @())
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        $vm = Hyper-V\New-VM -Name $Name -MemoryStartupBytes $MemoryBytes -Generation 2 -Version $Version -Path $Path -NoVHD
        Hyper-V\Set-VMProcessor -VM $vm -Count $ProcessorCount
        Hyper-V\Get-VMNetworkAdapter -VM $vm | Hyper-V\Remove-VMNetworkAdapter
        foreach ($d in $Disks) { Hyper-V\Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -ControllerNumber 0 -Path $d }
        foreach ($s in $Switches) { Hyper-V\Add-VMNetworkAdapter -VM $vm -SwitchName $s }
        $result = [pscustomobject]@{ Name = $vm.Name; Id = $vm.Id.ToString() }
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
