using System.Runtime.InteropServices;

namespace RetriBooru.Runtime;

/// <summary>
/// libtorch's OpenMP workers spin while they wait for work by default; on a busy 2-core machine that made 2 threads
/// about 8x slower than 1 (docs/training.md, Runtime). A passive wait policy makes them sleep instead. libgomp reads
/// OMP_WAIT_POLICY from the *native* environment once, when it is loaded with libtorch, so the variable is set with
/// libc's setenv (a managed Environment.SetEnvironmentVariable does not reach getenv) before anything loads libtorch.
/// A value the user already set wins.
/// </summary>
public static class OpenMpWaitPolicy
{
    public const string Variable = "OMP_WAIT_POLICY";
    public const string Default = "PASSIVE";

    [DllImport("libc", EntryPoint = "setenv")]
    static extern int SetEnv(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "getenv")]
    static extern IntPtr GetEnv(string name);

    /// <summary>Sets the native OMP_WAIT_POLICY to PASSIVE unless it is set (Linux and macOS; a no-op elsewhere).</summary>
    public static void Apply()
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return;
        try
        {
            if (NativeValue() is null) SetEnv(Variable, Default, 0);
            Environment.SetEnvironmentVariable(Variable, NativeValue());
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to call: libgomp keeps its default policy.
        }
    }

    /// <summary>The value the native environment holds (what libgomp reads), or null.</summary>
    public static string? NativeValue()
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return Environment.GetEnvironmentVariable(Variable);
        try { return Marshal.PtrToStringAnsi(GetEnv(Variable)); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }
}
