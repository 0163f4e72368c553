# The three settings of live migration without clustering: Enable-/Disable-VMMigration, the migration networks
# (Add-/Set-/Remove-VMMigrationNetwork, UseAnyNetworkForMigration) and Set-VMHost.
param([bool]$Enabled, [ValidateSet('CredSSP', 'Kerberos')][string]$Authentication,
      [ValidateSet('TCPIP', 'Compression', 'SMB')][string]$Performance,
      [int]$MaximumVirtualMachineMigrations, [int]$MaximumStorageMigrations, [string[]]$Subnets = @())
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
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
