using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace RetriBooru.Runtime;

/// <summary>
/// Finds native libraries in the <c>runtimes/RID/native/</c> folder next to the assembly that asks for
/// them. Console apps and tests get this from their deps.json; notebook kernels that reference a build
/// folder directly do not, so SkiaSharp would not find libSkiaSharp there. Runs only after the runtime's
/// own search failed, so it never changes what a normal app loads.
/// </summary>
public static class NativeLibraryProbe
{
    static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) != 0) return;
        // Hosts may load referenced assemblies into their own load context: hook the ones that hold ours.
        var contexts = new[] { typeof(NativeLibraryProbe).Assembly, typeof(SkiaSharp.SKBitmap).Assembly }
            .Select(a => AssemblyLoadContext.GetLoadContext(a) ?? AssemblyLoadContext.Default)
            .Append(AssemblyLoadContext.Default)
            .Distinct();
        foreach (var context in contexts) context.ResolvingUnmanagedDll += Resolve;
    }

    static IntPtr Resolve(Assembly assembly, string name)
    {
        // LibTorchSharp needs the libstdc++ fix: NativeTorchLoader owns it.
        if (name.Contains("LibTorchSharp", StringComparison.Ordinal)) return IntPtr.Zero;
        var dir = Path.GetDirectoryName(assembly.Location);
        if (string.IsNullOrEmpty(dir)) return IntPtr.Zero;
        foreach (var candidate in Candidates(dir, name))
            if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out var handle)) return handle;
        return IntPtr.Zero;
    }

    internal static IEnumerable<string> Candidates(string assemblyDir, string name)
    {
        var rid = RuntimeIdentifier();
        var native = Path.Combine(assemblyDir, "runtimes", rid, "native");
        var fileNames = OperatingSystem.IsWindows() ? new[] { name, name + ".dll" }
            : OperatingSystem.IsMacOS() ? new[] { name, name + ".dylib", "lib" + name + ".dylib" }
            : new[] { name, name + ".so", "lib" + name + ".so" };
        foreach (var file in fileNames.Distinct())
        {
            yield return Path.Combine(native, file);
            yield return Path.Combine(assemblyDir, file);
        }
    }

    static string RuntimeIdentifier()
    {
        var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        var arch = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.Arm64 => "arm64",
            Architecture.X86 => "x86",
            Architecture.Arm => "arm",
            _ => "x64",
        };
        return $"{os}-{arch}";
    }
}
