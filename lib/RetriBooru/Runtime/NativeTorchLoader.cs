using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using System.Security.Cryptography;

namespace RetriBooru.Runtime;

/// <summary>What happened when LibTorchSharp was loaded (shown by <c>retribooru doctor</c>).</summary>
public sealed record NativeLoadStatus(
    bool ResolverUsed,
    string? OriginalLibrary,
    string? LoadedLibrary,
    bool PatchApplied,
    LibStdCxxInfo LibStdCxx,
    IReadOnlyList<string> UnsatisfiedVersions,
    string? Error);

/// <summary>The C++ runtime the process uses and whether it provides the version TorchSharp 0.107 was linked against.</summary>
public sealed record LibStdCxxInfo(string? Path, bool HasRequiredVersion, IReadOnlySet<string> Versions);

/// <summary>
/// Makes TorchSharp's native library load on systems whose libstdc++ is older than GCC 13
/// (Debian 12, Ubuntu 22.04). <c>libLibTorchSharp.so</c> 0.107 declares a requirement on
/// <c>GLIBCXX_3.4.32</c> whose only symbol is an unused marker, so the requirement can be made weak.
///
/// Mechanism: a <see cref="AssemblyLoadContext.ResolvingUnmanagedDll"/> handler on TorchSharp's load
/// context. The runtime only calls it after its own search failed, so on a system with a new libstdc++
/// it never runs (a no-op). When it runs it finds the shipped library (output folder, runtimes/ folder,
/// or the NuGet cache for notebook kernels), writes a patched copy to a per-user cache (never touching
/// the NuGet cache), preloads libtorch's own libraries by full path so the copy's dependencies resolve
/// by soname, and returns the copy's handle.
/// </summary>
public static class NativeTorchLoader
{
    public const string RequiredLibStdCxxVersion = "GLIBCXX_3.4.32";
    const string LibraryName = "LibTorchSharp";
    const string LibraryFile = "libLibTorchSharp.so";
    // In dependency order. Loaded by full path before the patched copy (and before TorchSharp), so DT_NEEDED and
    // bare-name requests match them by soname (the copy is not next to them; a system libtorch may be on the path).
    static readonly string[] TorchDependencies = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];

    static int _registered;
    static readonly object Gate = new();
    static NativeLoadStatus? _status;
    static IntPtr _handle;

    /// <summary>Status of the last resolution, or null when the runtime loaded TorchSharp without help.</summary>
    public static NativeLoadStatus? Status { get { lock (Gate) return _status; } }

    /// <summary>
    /// Preloads the shipped libtorch and installs the resolver, once per process; safe to call from every entry point.
    /// </summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) != 0) return;
        if (!OperatingSystem.IsLinux()) return;
        var torchAssembly = typeof(TorchSharp.torch).Assembly;
        PreloadShippedLibTorch(torchAssembly);
        var context = AssemblyLoadContext.GetLoadContext(torchAssembly) ?? AssemblyLoadContext.Default;
        context.ResolvingUnmanagedDll += Resolve;
        if (context != AssemblyLoadContext.Default)
            AssemblyLoadContext.Default.ResolvingUnmanagedDll += Resolve;
    }

    /// <summary>The shipped libtorch files loaded by full path before TorchSharp's own loader ran (empty when none were found).</summary>
    public static IReadOnlyList<string> PreloadedLibTorch { get; private set; } = [];

    /// <summary>
    /// TorchSharp asks the dynamic loader for <c>libtorch_cpu.so</c> by bare name, so a system libtorch on the search
    /// path (Debian's libtorch1.13, a decoy on LD_LIBRARY_PATH) would win and crash the process at the first call.
    /// Loading the shipped files by full path first, dependencies first, makes every later bare-name request
    /// resolve to them: the loader matches an already loaded library by its soname before searching.
    /// </summary>
    static void PreloadShippedLibTorch(Assembly torchAssembly)
    {
        var folder = CandidateDirectories(torchAssembly)
            .FirstOrDefault(d => TorchDependencies.All(f => File.Exists(Path.Combine(d, f))));
        if (folder is null) return;
        var files = Directory.GetFiles(folder, "libgomp*.so*").Order(StringComparer.Ordinal)
            .Concat(TorchDependencies.Select(f => Path.Combine(folder, f)));
        var loaded = new List<string>();
        foreach (var file in files)
            if (NativeLibrary.TryLoad(file, out _)) loaded.Add(file);
        PreloadedLibTorch = loaded;
    }

    static IntPtr Resolve(Assembly assembly, string name)
    {
        if (name != LibraryName && name != LibraryFile && name != "lib" + LibraryName) return IntPtr.Zero;
        lock (Gate)
        {
            if (_handle != IntPtr.Zero) return _handle;
            try
            {
                _handle = LoadLibTorchSharp(assembly, out _status);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or DllNotFoundException or BadImageFormatException)
            {
                _status = new NativeLoadStatus(true, null, null, false, ProbeLibStdCxx(), [], e.Message);
                _handle = IntPtr.Zero;
            }
            return _handle;
        }
    }

    static IntPtr LoadLibTorchSharp(Assembly requester, out NativeLoadStatus status)
    {
        var libstdcxx = ProbeLibStdCxx();
        var directories = CandidateDirectories(requester).ToList();
        var original = directories.Select(d => Path.Combine(d, LibraryFile)).FirstOrDefault(File.Exists);
        if (original is null)
        {
            status = new NativeLoadStatus(true, null, null, false, libstdcxx, [],
                $"{LibraryFile} was not found in: {string.Join(", ", directories)}. Is the TorchSharp-cpu package restored?");
            return IntPtr.Zero;
        }

        var bytes = File.ReadAllBytes(original);
        var requirements = ElfSymbolVersions.ReadRequirements(bytes, original);
        var unsatisfied = requirements
            .Where(r => r.File.StartsWith("libstdc++", StringComparison.Ordinal) && !r.IsWeak && !libstdcxx.Versions.Contains(r.Name))
            .Select(r => r.Name).ToList();

        foreach (var dependency in TorchDependencies)
        {
            var path = directories.Select(d => Path.Combine(d, dependency)).FirstOrDefault(File.Exists);
            if (path is not null) NativeLibrary.TryLoad(path, out _);
        }

        string toLoad = original;
        bool patched = false;
        // Only the verified-harmless requirement is weakened; any other missing version is reported, not hidden.
        if (libstdcxx.Path is not null && unsatisfied.Contains(RequiredLibStdCxxVersion))
        {
            toLoad = WritePatchedCopy(bytes, original);
            patched = true;
        }

        bool ok = NativeLibrary.TryLoad(toLoad, out var handle);
        var remaining = unsatisfied.Where(v => !(patched && v == RequiredLibStdCxxVersion)).ToList();
        status = new NativeLoadStatus(true, original, ok ? toLoad : null, patched, libstdcxx, remaining,
            ok ? null : $"the dynamic loader refused {toLoad}" + (remaining.Count > 0 ? $"; the system libstdc++ lacks {string.Join(", ", remaining)}" : ""));
        return ok ? handle : IntPtr.Zero;
    }

    /// <summary>The patched copy lives in a per-user cache keyed by the original's hash; written atomically.</summary>
    static string WritePatchedCopy(byte[] original, string originalPath)
    {
        var key = Convert.ToHexString(SHA256.HashData(original))[..16].ToLowerInvariant();
        foreach (var root in CacheRoots())
        {
            try
            {
                var dir = Path.Combine(root, "native", key);
                var target = Path.Combine(dir, LibraryFile);
                if (File.Exists(target)) return target;
                var patched = ElfSymbolVersions.WithWeakRequirement(original, RequiredLibStdCxxVersion, originalPath)
                              ?? throw new InvalidDataException($"{originalPath}: no {RequiredLibStdCxxVersion} requirement to weaken");
                Directory.CreateDirectory(dir);
                AtomicFile.WriteAllBytes(target, patched);
                return target;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Read-only home (CI sandboxes, containers): try the next root.
            }
        }
        throw new IOException($"could not write a patched copy of {originalPath} to any of: {string.Join(", ", CacheRoots())}");
    }

    static IEnumerable<string> CacheRoots()
    {
        var overridden = Environment.GetEnvironmentVariable("RETRIBOORU_NATIVE_CACHE");
        if (!string.IsNullOrEmpty(overridden)) yield return overridden;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!string.IsNullOrEmpty(xdg)) yield return Path.Combine(xdg, "retribooru");
        else if (!string.IsNullOrEmpty(home)) yield return Path.Combine(home, ".cache", "retribooru");
        yield return Path.Combine(Path.GetTempPath(), $"retribooru-{Environment.UserName}");
    }

    /// <summary>Where the shipped native files can be: next to TorchSharp.dll, the app's runtimes/ folder, the host's probe list, the NuGet cache.</summary>
    internal static IEnumerable<string> CandidateDirectories(Assembly requester)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var rid = Path.Combine("runtimes", "linux-x64", "native");
        var roots = new List<string?>
        {
            Path.GetDirectoryName(requester.Location),
            Path.GetDirectoryName(typeof(TorchSharp.torch).Assembly.Location),
            AppContext.BaseDirectory,
        };
        foreach (var root in roots.Where(r => !string.IsNullOrEmpty(r)))
        {
            foreach (var dir in new[] { root!, Path.Combine(root!, rid) })
                if (Directory.Exists(dir) && seen.Add(Path.GetFullPath(dir))) yield return Path.GetFullPath(dir);
        }
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string probe)
            foreach (var dir in probe.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
                if (Directory.Exists(dir) && seen.Add(Path.GetFullPath(dir))) yield return Path.GetFullPath(dir);

        // Notebook kernels load TorchSharp.dll from the NuGet cache, where each package has its own folder.
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(packages))
            packages = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var torchSharpVersion = typeof(TorchSharp.torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0];
        foreach (var (package, version) in new[] { ("torchsharp", torchSharpVersion), ("libtorch-cpu-linux-x64", null) })
        {
            var packageDir = Path.Combine(packages, package);
            if (!Directory.Exists(packageDir)) continue;
            var versions = version is not null && Directory.Exists(Path.Combine(packageDir, version))
                ? [Path.Combine(packageDir, version)]
                : Directory.GetDirectories(packageDir).OrderByDescending(d => d, StringComparer.Ordinal).ToArray();
            foreach (var v in versions)
            {
                var dir = Path.GetFullPath(Path.Combine(v, rid));
                if (Directory.Exists(dir) && seen.Add(dir)) yield return dir;
            }
        }
    }

    /// <summary>Finds the libstdc++ this process uses (or would load) and reads the versions it defines.</summary>
    public static LibStdCxxInfo ProbeLibStdCxx()
    {
        if (!OperatingSystem.IsLinux()) return new LibStdCxxInfo(null, true, new HashSet<string>());
        var path = LoadedLibStdCxx() ?? SearchLibStdCxx();
        if (path is null) return new LibStdCxxInfo(null, false, new HashSet<string>());
        try
        {
            var versions = ElfSymbolVersions.ReadDefinitions(path);
            return new LibStdCxxInfo(path, versions.Contains(RequiredLibStdCxxVersion), versions);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return new LibStdCxxInfo(path, false, new HashSet<string>());
        }
    }

    static string? LoadedLibStdCxx()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                var file = line[slash..];
                if (Path.GetFileName(file).StartsWith("libstdc++.so", StringComparison.Ordinal)) return file;
            }
        }
        catch (IOException) { }
        return null;
    }

    static string? SearchLibStdCxx()
    {
        var dirs = (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib"]);
        return dirs.Select(d => Path.Combine(d, "libstdc++.so.6")).FirstOrDefault(File.Exists);
    }
}
