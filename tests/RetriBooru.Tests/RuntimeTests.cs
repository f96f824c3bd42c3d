using RetriBooru.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class ElfPatcherTests
{
    static string ShippedLibTorchSharp()
    {
        var path = NativeTorchLoader.CandidateDirectories(typeof(torch).Assembly)
            .Select(d => System.IO.Path.Combine(d, "libLibTorchSharp.so"))
            .FirstOrDefault(File.Exists);
        Assert.True(path is not null, "libLibTorchSharp.so not found next to TorchSharp.dll or in the NuGet cache");
        return path!;
    }

    [Fact]
    public void Patcher_flips_only_the_weak_bit_of_GLIBCXX_3_4_32_on_a_real_copy()
    {
        using var tmp = new TempDir();
        var copy = tmp.File("libLibTorchSharp.so");
        File.Copy(ShippedLibTorchSharp(), copy);
        var original = File.ReadAllBytes(copy);

        var before = ElfSymbolVersions.ReadRequirements(copy);
        var target = Assert.Single(before, r => r.Name == NativeTorchLoader.RequiredLibStdCxxVersion);
        Assert.Equal("libstdc++.so.6", target.File);
        Assert.False(target.IsWeak);

        var patched = ElfSymbolVersions.WithWeakRequirement(original, NativeTorchLoader.RequiredLibStdCxxVersion, copy);
        Assert.NotNull(patched);
        Assert.Equal(original.Length, patched!.Length);
        var differing = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToList();
        // vna_flags is little-endian: the weak bit 0x2 lives in the low byte.
        Assert.Equal([(int)target.FlagsOffset], differing);
        Assert.Equal(original[target.FlagsOffset] | 0x2, patched[target.FlagsOffset]);

        var after = ElfSymbolVersions.ReadRequirements(patched, copy);
        Assert.Equal(before.Count, after.Count);
        foreach (var (b, a) in before.Zip(after))
        {
            Assert.Equal(b.Name, a.Name);
            Assert.Equal(b.Name == NativeTorchLoader.RequiredLibStdCxxVersion, a.IsWeak != b.IsWeak);
        }
    }

    [Fact]
    public void Patcher_returns_null_when_the_requirement_is_absent()
    {
        var libstdcxx = NativeTorchLoader.ProbeLibStdCxx();
        Assert.NotNull(libstdcxx.Path);
        // libstdc++ defines versions but requires none of GLIBCXX: nothing to weaken.
        Assert.Null(ElfSymbolVersions.WithWeakRequirement(File.ReadAllBytes(libstdcxx.Path!), "GLIBCXX_3.4.32", libstdcxx.Path!));
    }

    [Fact]
    public void System_libstdcxx_versions_are_read_from_its_verdef_section()
    {
        var info = NativeTorchLoader.ProbeLibStdCxx();
        Assert.Contains("GLIBCXX_3.4", info.Versions);
        Assert.Contains("CXXABI_1.3", info.Versions);
        Assert.Equal(info.Versions.Contains("GLIBCXX_3.4.32"), info.HasRequiredVersion);
    }

    [Theory]
    [InlineData(new byte[0], "not an ELF file")]
    [InlineData(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F', 1, 1 }, "not an ELF file")]
    public void Bad_files_get_an_error_naming_the_file(byte[] content, string problem)
    {
        var e = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadRequirements(content, "/some/lib.so"));
        Assert.Contains("/some/lib.so", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void Truncated_library_is_a_clear_error_not_a_crash()
    {
        var bytes = File.ReadAllBytes(ShippedLibTorchSharp());
        var truncated = bytes[..4096];
        var e = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadRequirements(truncated, "cut.so"));
        Assert.Contains("cut.so", e.Message);
        Assert.Contains("outside the file", e.Message);
    }
}

public class TorchRuntimeTests
{
    [Fact]
    public void Conv_forward_and_backward_run_in_the_test_process()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        Seeding.Seed(1);
        // 16 output channels: with 8 (or 12), oneDNN's input gradient is wrong on AVX-512 CPUs for batches above 1
        // (zero or NaN here); OneDnnGradientTests covers that fault and the models' way around it.
        var conv = nn.Conv2d(3, 16, 3, padding: 1);
        var x = randn(2, 3, 16, 16, requires_grad: true);
        var y = conv.forward(x);
        Assert.Equal(new long[] { 2, 16, 16, 16 }, y.shape);
        y.square().mean().backward();
        Assert.NotNull(x.grad);
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
        Assert.True(conv.weight!.grad!.abs().sum().item<float>() > 0);
        conv.Dispose();
    }

    [Fact]
    public void The_libstdcxx_fix_is_applied_exactly_when_the_system_lacks_the_version()
    {
        Torch.Load();
        var system = NativeTorchLoader.ProbeLibStdCxx();
        var status = NativeTorchLoader.Status;
        if (system.HasRequiredVersion)
            Assert.True(status is null || !status.PatchApplied, "a system with GLIBCXX_3.4.32 must not be patched");
        else
        {
            Assert.NotNull(status);
            Assert.True(status!.PatchApplied);
            Assert.NotNull(status.LoadedLibrary);
            Assert.DoesNotContain(".nuget", status.LoadedLibrary!);
            Assert.Empty(status.UnsatisfiedVersions);
        }
    }

    static float[] SeededComputation(long seed)
    {
        using var scope = NewDisposeScope();
        Seeding.Seed(seed);
        var managed = Seeding.Stream("test-noise");
        var a = randn(64, 64);
        var w = nn.init.kaiming_uniform_(empty(64, 64));
        var shift = (float)managed.NextDouble();
        var result = a.matmul(w).tanh() + shift;
        return result.data<float>().ToArray();
    }

    [Fact]
    public void Same_seed_gives_bit_identical_tensors_and_managed_streams()
    {
        Torch.Load();
        TorchRuntime.SetDeterministic(true, threads: 1);
        var first = SeededComputation(42);
        var second = SeededComputation(42);
        var other = SeededComputation(43);
        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
        Assert.Equal(Seeding.Stream(7, "x").Next(), Seeding.Stream(7, "x").Next());
        Assert.NotEqual(Seeding.Stream(7, "x").Next(), Seeding.Stream(7, "y").Next());
    }

    [Fact]
    public void Device_choice_defaults_to_cpu_and_rejects_unknown_names()
    {
        Assert.Equal(DeviceType.CPU, TorchRuntime.ResolveDevice().type);
        Assert.Equal(DeviceType.CPU, TorchRuntime.ResolveDevice("cpu").type);
        var auto = TorchRuntime.ResolveDevice("auto");
        Assert.Equal(TorchRuntime.IsCudaAvailable() ? DeviceType.CUDA : DeviceType.CPU, auto.type);
        Assert.Throws<ArgumentException>(() => TorchRuntime.ResolveDevice("tpu"));
        if (!TorchRuntime.IsCudaAvailable())
        {
            var e = Assert.Throws<InvalidOperationException>(() => TorchRuntime.ResolveDevice("cuda"));
            Assert.Contains("docs/troubleshooting.md#gpu--cuda", e.Message);
        }
    }

    [Fact]
    public void Atomic_write_replaces_the_file_and_leaves_no_temporary()
    {
        using var tmp = new TempDir();
        var path = tmp.File("out.txt");
        AtomicFile.WriteAllText(path, "one");
        AtomicFile.WriteAllText(path, "two");
        Assert.Equal("two", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(tmp.Path));
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, _ => throw new InvalidOperationException("boom")));
        Assert.Equal("two", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(tmp.Path));
    }
}

public class ImageTensorTests
{
    [Fact]
    public void Png_round_trip_preserves_pixels()
    {
        Torch.Load();
        using var tmp = new TempDir();
        using var scope = NewDisposeScope();
        Seeding.Seed(3);
        var image = (rand(3, 8, 8) * 2 - 1);
        var quantized = ((image + 1) * 127.5f).round() / 127.5f - 1;
        var path = tmp.File("x.png");
        RetriBooru.Imaging.ImageTensor.SavePng(image, path);
        var back = RetriBooru.Imaging.ImageTensor.Load(path, 8);
        Assert.True((back - quantized).abs().max().item<float>() < 1e-5f);
    }

    [Fact]
    public void Undecodable_file_names_the_file()
    {
        using var tmp = new TempDir();
        var path = tmp.File("bad.png");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => RetriBooru.Imaging.ImageTensor.LoadBitmap(path));
        Assert.Contains("bad.png", e.Message);
        var missing = Assert.Throws<InvalidDataException>(() => RetriBooru.Imaging.ImageTensor.LoadBitmap(tmp.File("gone.png")));
        Assert.Equal($"{tmp.File("gone.png")}: file not found", missing.Message);
    }

    [Fact]
    public void Every_decode_refuses_a_header_claiming_too_many_pixels_before_decoding()
    {
        Torch.Load();
        using var tmp = new TempDir();
        var path = tmp.File("bomb.png");
        File.WriteAllBytes(path, DataTestFiles.PngClaiming(40000, 40000));
        long before = GC.GetTotalAllocatedBytes(precise: true);
        // Samples' references, evaluation and report images, and training images all decode through LoadBitmap / Load.
        foreach (var decode in new Action[] { () => RetriBooru.Imaging.ImageTensor.LoadBitmap(path), () => RetriBooru.Imaging.ImageTensor.Load(path, 32), () => RetriBooru.Imaging.ImageTensor.LoadMask(path, 32) })
        {
            var e = Assert.Throws<InvalidDataException>(decode);
            Assert.StartsWith(path + ": header claims 40000x40000", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        Assert.True(GC.GetTotalAllocatedBytes(precise: true) - before < 50_000_000, "a refused header allocated pixel memory");
        using var probe = RetriBooru.Metrics.Vqa.ProbeSamples.Load([new(path, new Dictionary<string, string>())], new RetriBooru.Metrics.Vqa.AttributeSchema([]), size: 32);
        Assert.Contains("40000x40000", probe.Skipped.Single().Reason);
    }
}

public class SafePathTests
{
    [Theory]
    [InlineData("../../../x")]
    [InlineData("samples/../../x.png")]
    [InlineData("/etc/passwd")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("a\0b")]
    public void A_value_that_leaves_its_folder_is_refused_with_one_line_naming_it(string value)
    {
        using var tmp = new TempDir();
        var e = Assert.Throws<InvalidDataException>(() => SafePath.Under(tmp.Path, value, "target id"));
        Assert.StartsWith($"target id '{value.Replace('\0', '?')}'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("images/a.png", "images/a.png")]
    [InlineData("a/../b.png", "b.png")]
    [InlineData(@"x\..\..\y.png", @"x\..\..\y.png")]
    public void A_value_inside_its_folder_is_joined(string value, string expected)
    {
        using var tmp = new TempDir();
        var expectedPath = Path.DirectorySeparatorChar == '/' ? Path.Combine(tmp.Path, expected) : Path.GetFullPath(Path.Combine(tmp.Path, expected));
        Assert.Equal(expectedPath, SafePath.Under(tmp.Path + "/", value));
    }
}

public class OutputFolderTests
{
    static void Write(string path, string text) { Directory.CreateDirectory(Path.GetDirectoryName(path)!); File.WriteAllText(path, text); }

    [Fact]
    public void A_swap_killed_after_the_results_were_complete_is_finished_by_the_next_run()
    {
        using var tmp = new TempDir();
        var dir = tmp.File("out");
        // kill -9 right after the earlier folder moved aside: OUT is missing, OUT.old holds the earlier results, OUT.ready the new ones.
        Write(Path.Combine(dir + ".old", "result.txt"), "earlier");
        Write(Path.Combine(dir + ".old", "source", "keep.txt"), "carried");
        Write(Path.Combine(dir + ".ready", "result.txt"), "new");
        using var folder = OutputFolder.Rebuild(dir);
        Assert.Equal("new", File.ReadAllText(Path.Combine(dir, "result.txt")));
        Assert.Contains(folder.Notes, n => n.Contains("finished swapping"));
        Assert.False(Directory.Exists(dir + ".old") || Directory.Exists(dir + ".ready"));
    }

    [Fact]
    public void A_swap_killed_while_carrying_entries_over_carries_the_rest_and_keeps_the_new_results()
    {
        using var tmp = new TempDir();
        var dir = tmp.File("out");
        Write(Path.Combine(dir, "result.txt"), "earlier");
        Write(Path.Combine(dir, "source", "keep.txt"), "carried");
        Write(Path.Combine(dir + ".ready", "result.txt"), "new");
        OutputFolder.Rebuild(dir).Dispose();
        Assert.Equal("new", File.ReadAllText(Path.Combine(dir, "result.txt")));
        Assert.Equal("carried", File.ReadAllText(Path.Combine(dir, "source", "keep.txt")));
    }

    [Fact]
    public void An_unfinished_staging_folder_never_replaces_the_earlier_results()
    {
        using var tmp = new TempDir();
        var dir = tmp.File("out");
        Write(Path.Combine(dir, "result.txt"), "earlier");
        Write(Path.Combine(dir + ".new", "result.txt"), "half");
        using var folder = OutputFolder.Open(dir, resume: false, overwrite: true);
        Assert.Equal("earlier", File.ReadAllText(Path.Combine(dir, "result.txt")));
        Assert.False(Directory.Exists(dir + ".new"));
        Assert.Contains(folder.Notes, n => n.Contains("removed"));
        Assert.Throws<IOException>(() => folder.Complete(d => { Write(Path.Combine(d, "result.txt"), "new"); throw new IOException("No space left on device"); }));
        Assert.Equal("earlier", File.ReadAllText(Path.Combine(dir, "result.txt")));
        Assert.False(Directory.Exists(dir + ".new"));
        folder.Complete(d => Write(Path.Combine(d, "result.txt"), "new"));
        Assert.Equal("new", File.ReadAllText(Path.Combine(dir, "result.txt")));
        Assert.Equal(["result.txt"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void A_failure_writing_into_a_new_folder_leaves_it_empty_so_a_rerun_needs_no_overwrite()
    {
        using var tmp = new TempDir();
        var dir = tmp.File("out");
        using (var folder = OutputFolder.Open(dir, resume: false, overwrite: false))
        {
            Assert.False(folder.Staged);
            Assert.Throws<InvalidDataException>(() => folder.Complete(d => { Write(Path.Combine(d, "samples", "0.png"), "half"); throw new InvalidDataException("bad manifest"); }));
            Assert.Empty(Directory.GetFileSystemEntries(dir));
        }
        using (var again = OutputFolder.Open(dir, resume: false, overwrite: false)) again.Complete(d => Write(Path.Combine(d, "result.txt"), "new"));
        Assert.Equal("new", File.ReadAllText(Path.Combine(dir, "result.txt")));
    }

    [Fact]
    public void A_second_run_writing_to_a_folder_in_use_is_refused_and_leaves_the_first_runs_staging_alone()
    {
        using var tmp = new TempDir();
        var dir = tmp.File("out");
        Write(Path.Combine(dir, "result.txt"), "earlier");
        using (var first = OutputFolder.Open(dir, resume: false, overwrite: true))
        {
            Write(Path.Combine(first.WorkingPath, "result.txt"), "half-written by the first run");
            // The second run would have removed OUT.new as an interrupted run's leftover; the lock refuses it first.
            var refused = Assert.Throws<IOException>(() => OutputFolder.Open(dir, resume: false, overwrite: true));
            Assert.Contains($"{dir} is being written by another run", refused.Message);
            Assert.DoesNotContain('\n', refused.Message);
            Assert.Throws<IOException>(() => OutputFolder.Rebuild(dir));
            Assert.Equal("half-written by the first run", File.ReadAllText(Path.Combine(dir + ".new", "result.txt")));
            first.Commit();
        }
        Assert.Equal("half-written by the first run", File.ReadAllText(Path.Combine(dir, "result.txt")));
        Assert.False(File.Exists(dir + ".busy"), "the lock file is removed when the run ends");
        using var next = OutputFolder.Open(dir, resume: false, overwrite: true);
        Assert.True(next.Staged);
    }
}

public class OpenMpWaitPolicyTests
{
    [Fact]
    public void The_native_environment_holds_a_passive_wait_policy_before_libtorch_loads_and_provenance_records_it()
    {
        RetriBooru.Runtime.TorchRuntime.EnsureLoaded();
        // The module initializer sets it with libc's setenv (what libgomp's getenv sees) unless the user set one.
        var native = RetriBooru.Runtime.OpenMpWaitPolicy.NativeValue();
        Assert.False(string.IsNullOrEmpty(native));
        Assert.Equal(native, Environment.GetEnvironmentVariable(RetriBooru.Runtime.OpenMpWaitPolicy.Variable));
        Assert.Equal(native, RetriBooru.Experiments.Provenance.Capture().OmpWaitPolicy);
    }
}

public class OneDnnTests
{
    [Fact]
    public void OneDnn_kernels_are_on_unless_switched_off_and_provenance_records_it()
    {
        RetriBooru.Runtime.TorchRuntime.EnsureLoaded();
        // libtorch's own flag, read back after the switch (Linux: the symbol is found; CI runs Linux).
        bool expected = Environment.GetEnvironmentVariable(RetriBooru.Runtime.OneDnn.EnvironmentVariable) != "0";
        Assert.Equal(expected, RetriBooru.Runtime.OneDnn.Enabled);
        Assert.Equal(expected, RetriBooru.Experiments.Provenance.Capture().OneDnnEnabled);
        Assert.Equal(expected ? RetriBooru.Experiments.ExperimentRunner.TrainingNumericsVersion : RetriBooru.Experiments.ExperimentRunner.TrainingNumericsVersion + ", oneDNN off",
            RetriBooru.Experiments.ExperimentRunner.TrainingNumerics);
        // NNPACK is switched off at load (it printed a warning per convolution where it cannot initialise).
        Assert.False(RetriBooru.Runtime.NnPack.Enabled);
    }

    [Fact]
    public void Only_IP_Adapter_training_stages_are_keyed_by_its_batch_split()
    {
        // IP-Adapter's batches are split across threads since 2026-12-02: its older stages must not be reused, the others must.
        foreach (var kind in Enum.GetValues<RetriBooru.Settings.ModelKind>())
        {
            var numerics = RetriBooru.Experiments.ExperimentRunner.TrainingNumericsOf(kind);
            if (kind == RetriBooru.Settings.ModelKind.IpAdapter) Assert.NotEqual(RetriBooru.Experiments.ExperimentRunner.TrainingNumerics, numerics);
            else Assert.Equal(RetriBooru.Experiments.ExperimentRunner.TrainingNumerics, numerics);
        }
    }
}
