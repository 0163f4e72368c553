# The three settings of live migration without clustering: Enable-/Disable-VMMigration, the migration networks
# (Add-/Set-/Remove-VMMigrationNetwork, UseAnyNetworkForMigration) and Set-VMHost.
param([bool]$Enabled, [ValidateSet('CredSSP', 'Kerberos')][string]$Authentication,
      [ValidateSet('TCPIP', 'Compression', 'SMB')][string]$Performance,
      [int]$MaximumVirtualMachineMigrations, [int]$MaximumStorageMigrations, [string[]]$Subnets = @())
if ($Enabled) { Hyper-V\Enable-VMMigration } else { Hyper-V\Disable-VMMigration }
Hyper-V\Set-VMHost -VirtualMachineMigrationAuthenticationType $Authentication `
  -VirtualMachineMigrationPerformanceOption $Performance `
  -MaximumVirtualMachineMigrations $MaximumVirtualMachineMigrations `
  -MaximumStorageMigrations $MaximumStorageMigrations -UseAnyNetworkForMigration ($Subnets.Count -eq 0)
$have = @(Hyper-V\Get-VMMigrationNetwork | ForEach-Object { $_.Subnet })
foreach ($s in $have) { if ($Subnets -notcontains $s) { Hyper-V\Remove-VMMigrationNetwork -Subnet $s } }
$prio = 0
foreach ($s in $Subnets) {
  if ($have -contains $s) { Hyper-V\Set-VMMigrationNetwork -Subnet $s -NewPriority $prio }
  else { Hyper-V\Add-VMMigrationNetwork -Subnet $s -Priority $prio }
  $prio += 1
}
$result = [pscustomobject]@{ Enabled = $Enabled; Subnets = @($Subnets) }
