using System.Reflection;
using System.Runtime.Loader;
using RetriBooru.Runtime;

namespace RetriBooru.Interactive;

/// <summary>
/// The notebook side of the workbench: one call makes the kernel ready (TorchSharp loaded with the
/// libstdc++ fix, Plotly.NET working, formatters registered). The bootstrap cell of every notebook calls it.
/// </summary>
public static class NotebookSession
{
    static int _started;

    /// <summary>True when RETRIBOORU_SMOKE=1: notebooks then pick their smoke sizes (the test suite sets it).</summary>
    public static bool Smoke => Environment.GetEnvironmentVariable("RETRIBOORU_SMOKE") == "1";

    /// <summary>The tutorial value, or the smoke value when <see cref="Smoke"/> is set.</summary>
    public static T Size<T>(T tutorial, T smoke) => Smoke ? smoke : tutorial;

    /// <summary>
    /// Where a notebook writes its files: a fresh temp folder in smoke mode (test runs leave nothing in the
    /// repository), else <c>runs/notebooks/NAME</c> under the repository root (gitignored; reruns reuse it).
    /// </summary>
    public static string OutputFolder(string name, string? startDirectory = null)
    {
        if (string.IsNullOrWhiteSpace(name) || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            throw new ArgumentException($"'{name}' is not a usable folder name", nameof(name));
        var folder = Smoke
            ? Path.Combine(Path.GetTempPath(), $"retribooru-{name}-{Guid.NewGuid():N}"[..(name.Length + 23)])
            : SafePath.Under(Path.Combine(RepositoryRoot(startDirectory ?? Environment.CurrentDirectory), "runs", "notebooks"), name, "notebook name");
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>The nearest folder at or above <paramref name="start"/> that holds Workbench.sln.</summary>
    public static string RepositoryRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Workbench.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"Workbench.sln not found at or above {start}; start the notebook kernel inside the repository");
    }

    public static void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0) return;
        InstallFSharpCoreBinding();
        NativeLibraryProbe.Register();
        TorchRuntime.EnsureLoaded();
        WorkbenchFormatters.Register();
    }

    /// <summary>
    /// Plotly.NET 6.0.0 asks for FSharp.Core 10.1 while the notebook kernels ship 10.0; F# keeps
    /// backward-compatible APIs within a major version, so the already-loaded FSharp.Core answers the request.
    /// </summary>
    internal static void InstallFSharpCoreBinding()
    {
        AssemblyLoadContext.Default.Resolving += (context, name) =>
        {
            if (name.Name != "FSharp.Core") return null;
            return AppDomain.CurrentDomain.GetAssemblies()
                .Where(a => a.GetName().Name == "FSharp.Core")
                .OrderByDescending(a => a.GetName().Version)
                .FirstOrDefault();
        };
    }
}
