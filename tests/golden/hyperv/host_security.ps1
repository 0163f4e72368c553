# Credential Guard: Windows Server 2025 turns it on by default, and it breaks CredSSP moves.
param()
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {
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
