# Credential Guard: Windows Server 2025 turns it on by default, and it breaks CredSSP moves.
param()
$dg = Get-CimInstance -Namespace root\Microsoft\Windows\DeviceGuard -ClassName Win32_DeviceGuard
$lsa = Get-ItemProperty -Path HKLM:\SYSTEM\CurrentControlSet\Control\Lsa -ErrorAction SilentlyContinue
$result = [pscustomobject]@{
  SecurityServicesRunning = @($dg.SecurityServicesRunning | ForEach-Object { [int]$_ })
  SecurityServicesConfigured = @($dg.SecurityServicesConfigured | ForEach-Object { [int]$_ })
  VirtualizationBasedSecurityStatus = [int]$dg.VirtualizationBasedSecurityStatus
  CredentialGuardRunning = (@($dg.SecurityServicesRunning) -contains 1)
  LsaCfgFlags = if ($lsa -and $lsa.PSObject.Properties['LsaCfgFlags']) { [int]$lsa.LsaCfgFlags } else { $null }
  OsBuild = [Environment]::OSVersion.Version.Build
}
