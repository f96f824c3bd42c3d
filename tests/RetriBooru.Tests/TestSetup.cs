using RetriBooru.Runtime;

[assembly: Xunit.CollectionBehavior(DisableTestParallelization = false, MaxParallelThreads = 2)]

namespace RetriBooru.Tests;

/// <summary>Temporary folder deleted at dispose; every test that writes files uses one.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "retribooru-tests", Guid.NewGuid().ToString("N"));
    public TempDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Locates files of the repository (notebooks, experiments, manifests) from the test's output folder.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "Workbench.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Workbench.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>Loads TorchSharp once per test process (with the libstdc++ fix when needed).</summary>
public static class Torch
{
    public static void Load() => TorchRuntime.EnsureLoaded();
}

static class TestModuleInitializer
{
    /// <summary>Tests may call TorchSharp before any RetriBooru type: register the resolvers first.</summary>
#pragma warning disable CA2255
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Initialize()
    {
        // Two test threads each running 2-thread libtorch ops oversubscribe a 2-core machine badly.
        if (Environment.GetEnvironmentVariable("RETRIBOORU_THREADS") is null) Environment.SetEnvironmentVariable("RETRIBOORU_THREADS", "1");
        NativeTorchLoader.Register();
    }
#pragma warning restore CA2255
}
