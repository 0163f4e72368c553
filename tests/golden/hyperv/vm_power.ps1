# Power actions of one VM: Start-VM, Stop-VM (guest shutdown or turn off), Save-VM,
# Suspend-VM/Resume-VM and Remove-VMSavedState.
param([string]$Name, [ValidateSet('Start', 'Shutdown', 'TurnOff', 'Save', 'Pause', 'Resume', 'DiscardSaved')][string]$Action)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
        switch ($Action) {
          'Start' { Hyper-V\Start-VM -Name $Name }
          'Shutdown' { Hyper-V\Stop-VM -Name $Name -Force }
          'TurnOff' { Hyper-V\Stop-VM -Name $Name -TurnOff -Force }
          'Save' { Hyper-V\Save-VM -Name $Name }
          'Pause' { Hyper-V\Suspend-VM -Name $Name }
          'Resume' { Hyper-V\Resume-VM -Name $Name }
          'DiscardSaved' { Hyper-V\Remove-VMSavedState -VMName $Name }
        }
        $result = [pscustomobject]@{ Name = $Name; State = (Hyper-V\Get-VM -Name $Name).State.ToString() }
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
