using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Serialization;
using RetriBooru.Runtime;

namespace RetriBooru.Experiments;

/// <summary>Where a result came from: code version, machine and libraries. Recorded with every run.</summary>
public sealed record Provenance
{
    [JsonPropertyName("git_commit")] public string? GitCommit { get; init; }
    [JsonPropertyName("git_dirty")] public bool? GitDirty { get; init; }
    [JsonPropertyName("machine")] public string Machine { get; init; } = "";
    [JsonPropertyName("os")] public string Os { get; init; } = "";
    [JsonPropertyName("cores")] public int Cores { get; init; }
    [JsonPropertyName("memory_gib")] public double MemoryGiB { get; init; }
    [JsonPropertyName("dotnet")] public string DotNet { get; init; } = "";
    [JsonPropertyName("torchsharp")] public string TorchSharp { get; init; } = "";
    [JsonPropertyName("libtorch")] public string LibTorch { get; init; } = "";
    [JsonPropertyName("threads")] public int Threads { get; init; }
    /// <summary>OMP_WAIT_POLICY as libgomp sees it (the native environment); PASSIVE unless the user set another.</summary>
    [JsonPropertyName("omp_wait_policy")] public string? OmpWaitPolicy { get; init; }
    /// <summary>Whether libtorch's oneDNN kernels were on (off by default, see <see cref="OneDnn"/>; null: not known).</summary>
    [JsonPropertyName("onednn")] public bool? OneDnnEnabled { get; init; }
    [JsonPropertyName("device")] public string Device { get; init; } = "cpu";
    /// <summary>The one-minute load average when the run started (Linux; null elsewhere): timings mean little without it.</summary>
    [JsonPropertyName("load_average")] public double? LoadAverage { get; init; }

    public static Provenance Capture(string? repositoryHint = null, string device = "cpu") => new()
    {
        GitCommit = GitInfo.Commit(repositoryHint),
        GitDirty = GitInfo.IsDirty(repositoryHint),
        Machine = Environment.MachineName,
        Os = RuntimeInformation.OSDescription,
        Cores = Environment.ProcessorCount,
        MemoryGiB = Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024), 1),
        DotNet = RuntimeInformation.FrameworkDescription,
        TorchSharp = TorchRuntime.TorchSharpVersion,
        LibTorch = TorchRuntime.LibTorchVersion,
        Threads = TorchRuntime.Threads,
        OmpWaitPolicy = Runtime.OpenMpWaitPolicy.NativeValue(),
        OneDnnEnabled = OneDnn.Enabled,
        Device = device,
        LoadAverage = OneMinuteLoadAverage(),
    };

    /// <summary>The first field of /proc/loadavg, or null where there is none or it does not parse.</summary>
    public static double? OneMinuteLoadAverage()
    {
        try
        {
            if (!File.Exists("/proc/loadavg")) return null;
            var first = File.ReadAllText("/proc/loadavg").Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            return double.TryParse(first, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var load) ? load : null;
        }
        catch (IOException) { return null; }
    }
}

/// <summary>The git commit of the working tree the program runs from (null outside a checkout).</summary>
public static class GitInfo
{
    /// <summary>Reads .git/HEAD directly so no git binary is needed; falls back to `git rev-parse`.</summary>
    public static string? Commit(string? start = null)
    {
        var gitDir = FindGitDir(start ?? Environment.CurrentDirectory) ?? FindGitDir(AppContext.BaseDirectory);
        if (gitDir is null) return null;
        try
        {
            var head = File.ReadAllText(Path.Combine(gitDir, "HEAD")).Trim();
            if (!head.StartsWith("ref: ", StringComparison.Ordinal)) return head;
            var reference = head[5..];
            var loose = Path.Combine(gitDir, reference);
            if (File.Exists(loose)) return File.ReadAllText(loose).Trim();
            var packed = Path.Combine(gitDir, "packed-refs");
            if (File.Exists(packed))
                foreach (var line in File.ReadLines(packed))
                    if (line.EndsWith(" " + reference, StringComparison.Ordinal)) return line[..line.IndexOf(' ')];
        }
        catch (IOException) { }
        return RunGit(Path.GetDirectoryName(gitDir)!, "rev-parse HEAD");
    }

    /// <summary>True when tracked files differ from the commit; null when git is not available.</summary>
    public static bool? IsDirty(string? start = null)
    {
        var gitDir = FindGitDir(start ?? Environment.CurrentDirectory) ?? FindGitDir(AppContext.BaseDirectory);
        if (gitDir is null) return null;
        var status = RunGit(Path.GetDirectoryName(gitDir)!, "status --porcelain --untracked-files=no");
        return status is null ? null : status.Length > 0;
    }

    static string? FindGitDir(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, ".git");
            if (Directory.Exists(candidate)) return candidate;
            if (File.Exists(candidate))
            {
                // Worktrees and submodules: ".git" is a file "gitdir: PATH".
                var line = File.ReadAllText(candidate).Trim();
                if (line.StartsWith("gitdir: ", StringComparison.Ordinal))
                {
                    var path = Path.GetFullPath(Path.Combine(dir.FullName, line[8..]));
                    return path;
                }
            }
        }
        return null;
    }

    static string? RunGit(string workingDirectory, string arguments)
    {
        try
        {
            var start = new ProcessStartInfo("git", arguments) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(start);
            if (process is null) return null;
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit(10_000);
            return process.ExitCode == 0 ? output.Trim() : null;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}
