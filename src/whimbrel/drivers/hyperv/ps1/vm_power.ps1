# Power actions of one VM: Start-VM, Stop-VM (guest shutdown or turn off), Save-VM,
# Suspend-VM/Resume-VM and Remove-VMSavedState.
param([string]$Name, [ValidateSet('Start', 'Shutdown', 'TurnOff', 'Save', 'Pause', 'Resume', 'DiscardSaved')][string]$Action)
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
