using RetriBooru.Data;
using RetriBooru.Data.Ingest;
using RetriBooru.Imaging;
using SkiaSharp;
using Xunit;

namespace RetriBooru.Tests;

public class DataBadInputTests
{
    static readonly SKColor Red = new(220, 30, 40);
    const string GoodTags = "character:kai, shirt, red_shirt";

    /// <summary>Three good figures (so the build has something to keep) plus whatever the test adds.</summary>
    static TempDir SourceWithGoodImages()
    {
        var src = new TempDir();
        for (int i = 0; i < 3; i++) DataTestFiles.WriteFigure(src.Path, $"good{i}", GoodTags, Red, offset: i);
        return src;
    }

    static Dictionary<string, BuildProblem> Build(TempDir src, TempDir outDir, out BuildResult result, BuildOptions? options = null)
    {
        result = DatasetBuilder.Build(src.Path, outDir.Path, options ?? new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0 });
        Assert.Equal(["good0", "good1", "good2"], result.Records.Select(r => r.Id));
        Assert.Equal(3, result.Manifests["b"].Count);
        // The report on disk says the same as the result.
        var onDisk = BuildReport.Read(Path.Combine(outDir.Path, BuildReport.FileName));
        Assert.Equal(result.Problems, onDisk);
        return result.Problems.ToDictionary(p => p.Path);
    }

    [Fact]
    public void Broken_image_files_are_each_reported_with_a_reason_and_skipped()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        var good = File.ReadAllBytes(src.File("good0.png"));
        void Image(string name, byte[] bytes) { File.WriteAllBytes(src.File(name), bytes); File.WriteAllText(src.File(Path.ChangeExtension(name, ".txt")), GoodTags); }
        Image("truncated.png", good[..(good.Length / 2)]);
        Image("zero.png", []);
        Image("text.png", "this is not a picture"u8.ToArray());
        var corrupt = (byte[])good.Clone();
        for (int i = 40; i < corrupt.Length - 20; i++) corrupt[i] ^= 0x5a;
        Image("corrupt.png", corrupt);
        Image("bomb.png", DataTestFiles.PngClaiming(200_000, 200_000));
        File.WriteAllText(src.File("notes.md"), "# not an image");

        var problems = Build(src, outDir, out var result);
        Assert.Equal("truncated_image", problems["truncated.png"].Code);
        Assert.Equal("empty_file", problems["zero.png"].Code);
        Assert.Equal("not_an_image", problems["text.png"].Code);
        Assert.Contains(problems["corrupt.png"].Code, new[] { "corrupt_image", "truncated_image", "not_an_image" });
        Assert.Equal("too_many_pixels", problems["bomb.png"].Code);
        Assert.Contains("200000x200000", problems["bomb.png"].Message);
        Assert.Equal(ProblemSeverity.Ignored, problems["notes.md"].Severity);
        Assert.All(problems.Values.Where(p => p.Path.EndsWith(".png")), p => Assert.Equal(ProblemSeverity.Rejected, p.Severity));
        Assert.Equal(1, result.Stats.Rejected["too_many_pixels"]);
        Assert.Equal(1, result.Stats.Rejected["empty_file"]);
        Assert.Equal(8, result.Stats.ImagesFound);
        // Nothing of a rejected image is left in the dataset folder.
        Assert.Equal(3, Directory.GetFiles(Path.Combine(outDir.Path, DatasetLayout.ImagesFolder)).Length);
    }

    [Fact]
    public void Pixel_limit_is_configurable()
    {
        var (bitmap, problem) = ImageProbe.TryDecode(WriteTemp(DataTestFiles.Png(64, 64, Red)), maxPixels: 1000);
        Assert.Null(bitmap);
        Assert.Equal("too_many_pixels", problem!.Code);
        var (ok, none) = ImageProbe.TryDecode(WriteTemp(DataTestFiles.Png(64, 64, Red)), maxPixels: 4096);
        using (ok) Assert.Null(none);
    }

    static string WriteTemp(byte[] bytes)
    {
        var path = Path.Combine(Path.GetTempPath(), "retribooru-tests", Guid.NewGuid().ToString("N") + ".png");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Malformed_and_empty_tag_files_and_metadata_are_reported()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        var png = DataTestFiles.Png(48, 48, Red);
        File.WriteAllBytes(src.File("empty.png"), png); File.WriteAllText(src.File("empty.txt"), "");
        File.WriteAllBytes(src.File("blank.png"), png); File.WriteAllText(src.File("blank.txt"), " ,  ,\n");
        File.WriteAllBytes(src.File("binary.png"), png); File.WriteAllBytes(src.File("binary.txt"), [0xff, 0xfe, 0x00, 0x41, 0xc3]);
        File.WriteAllBytes(src.File("control.png"), png); File.WriteAllText(src.File("control.txt"), "character:x, sh\u0001irt");
        File.WriteAllBytes(src.File("badjson.png"), png); File.WriteAllText(src.File("badjson.json"), "{\"tag_string_general\": ");
        File.WriteAllBytes(src.File("nofields.png"), png); File.WriteAllText(src.File("nofields.json"), "{\"id\": 5}");
        File.WriteAllBytes(src.File("untagged.png"), png);
        File.WriteAllText(src.File("batch.jsonl"), "{\"id\": 9, \"tag_string_general\": \"shirt\"}\nnot json at all\n");

        var problems = Build(src, outDir, out _);
        Assert.Equal("empty_tags", problems["empty.png"].Code);
        Assert.Equal("empty_tags", problems["blank.png"].Code);
        Assert.Equal("malformed_tags", problems["binary.png"].Code);
        Assert.Equal("malformed_tags", problems["control.png"].Code);
        Assert.Equal("malformed_metadata", problems["badjson.png"].Code);
        Assert.Equal("malformed_metadata", problems["nofields.png"].Code);
        Assert.Equal("no_tags", problems["untagged.png"].Code);
        Assert.Equal("malformed_metadata", problems["batch.jsonl:2"].Code);
        Assert.Contains("batch.jsonl", problems.Keys.Where(k => k.StartsWith("batch")).Single());
    }

    [Fact]
    public void Tag_floods_are_capped_per_image_and_counted_and_an_oversized_tag_file_is_not_read()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        var flood = string.Join(", ", Enumerable.Range(0, 5000).Select(i => $"tag_{i}"));
        // General tags are kept in file order up to the cap; the character tag after the flood is kept all the same.
        DataTestFiles.WriteFigure(src.Path, "flood", $"shirt, red_shirt, {flood}, character:kai", Red, offset: 4);
        DataTestFiles.WriteFigure(src.Path, "jflood", "", Red, offset: 5);
        File.Delete(src.File("jflood.txt"));
        File.WriteAllText(src.File("jflood.json"), $"{{\"tag_string_general\": \"shirt red_shirt {flood.Replace(",", "")}\", \"tag_string_character\": \"kai\"}}");
        DataTestFiles.WriteFigure(src.Path, "huge", GoodTags + ", " + new string('x', 150) + string.Concat(Enumerable.Range(0, 2000).Select(i => $", t{i}_{new string('y', 150)}")), Red, offset: 6);
        Assert.True(new FileInfo(src.File("huge.txt")).Length > PostTagParser.MaxTagFileBytes);

        var result = DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        var problems = result.Problems.ToDictionary(p => p.Path);
        Assert.Equal("too_many_tags", problems["flood.txt"].Code);
        Assert.Equal(ProblemSeverity.Warning, problems["flood.txt"].Severity);
        Assert.Contains($"{5003 - PostTagParser.MaxTagsPerImage:N0} tags left out", problems["flood.txt"].Message);
        Assert.Equal("too_many_tags", problems["jflood.json"].Code);
        Assert.Equal(2, result.Stats.Warnings["too_many_tags"]);
        foreach (var id in new[] { "flood", "jflood" })
        {
            var record = result.Records.Single(r => r.Id == id);
            Assert.Equal("kai", record.Character);
            Assert.Equal(PostTagParser.MaxTagsPerImage, record.Prompts.Split(", ").Length);
        }
        Assert.Equal("tag_file_too_large", problems["huge.png"].Code);
        Assert.Contains("huge.txt", problems["huge.png"].Message);
        Assert.Contains("over the limit", problems["huge.png"].Message);
        Assert.Equal(5, result.Records.Count);
    }

    [Fact]
    public void Duplicate_ids_keep_the_first_file_and_report_the_rest()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        // good0.jpg has the same stem (id) as good0.png; sub/good1.png the same as good1.png.
        File.Copy(src.File("good0.png"), src.File("good0.jpg"));
        Directory.CreateDirectory(src.File("sub"));
        DataTestFiles.WriteFigure(src.File("sub"), "good1", GoodTags, Red, offset: 5);
        var problems = Build(src, outDir, out var result);
        // Files are taken in ordinal path order, so good0.jpg comes first and good0.png is the duplicate.
        Assert.Equal("duplicate_id", problems["good0.png"].Code);
        Assert.Equal("good0.jpg", result.Records[0].Source);
        Assert.Equal("duplicate_id", problems["sub/good1.png"].Code);
        Assert.Contains("good1.png", problems["sub/good1.png"].Message);
        Assert.Equal(2, result.Stats.Rejected["duplicate_id"]);
    }

    [Fact]
    public void Symlinks_and_paths_escaping_the_root_are_not_followed()
    {
        using var src = SourceWithGoodImages();
        using var outside = new TempDir();
        using var outDir = new TempDir();
        DataTestFiles.WriteFigure(outside.Path, "secret", GoodTags, Red);
        File.CreateSymbolicLink(src.File("escape.png"), outside.File("secret.png"));
        File.CreateSymbolicLink(src.File("inside.png"), src.File("good0.png"));
        Directory.CreateSymbolicLink(src.File("linkdir"), outside.Path);
        File.WriteAllText(src.File("posts.jsonl"), "{\"id\": 77, \"file\": \"../../etc/passwd\", \"tag_string_character\": \"kai\", \"tag_string_general\": \"shirt\"}\n");
        var problems = Build(src, outDir, out _);
        Assert.Equal("path_escapes_root", problems["escape.png"].Code);
        Assert.Equal("symlink", problems["inside.png"].Code);
        Assert.Equal("path_escapes_root", problems["linkdir"].Code);
        Assert.Equal("path_escapes_root", problems["posts.jsonl:1"].Code);
    }

    [Fact]
    public void A_backslash_in_a_file_name_is_part_of_the_name_never_a_separator()
    {
        if (Path.DirectorySeparatorChar == '\\') return; // a backslash cannot be part of a file name on Windows
        using var parent = new TempDir();
        var src = parent.File("src");
        for (int i = 0; i < 3; i++) DataTestFiles.WriteFigure(src, $"good{i}", GoodTags, Red, offset: i);
        // Read as a path, this name would be parent/private/a.png: a different (blue-clad) figure outside the source.
        const string escaping = @"x\..\..\private\a";
        DataTestFiles.WriteFigure(parent.File("private"), "a", "character:mio, shirt, blue_shirt", new SKColor(30, 40, 220), offset: 4);
        DataTestFiles.WriteFigure(src, escaping, "character:kai, shirt, red_shirt", Red, offset: 5);
        DataTestFiles.WriteFigure(src, @"plain\name", GoodTags, Red, offset: 6);
        using var outDir = new TempDir();

        var result = DatasetBuilder.Build(src, outDir.Path, NoSplits);
        Assert.DoesNotContain(result.Problems, p => p.Severity == ProblemSeverity.Rejected);
        Assert.DoesNotContain(result.Records, r => r.Character == "mio");
        var escaped = result.Records.Single(r => r.Source == escaping + ".png");
        Assert.Equal("red", escaped.ClothingColor);
        Assert.Equal("x_.._.._private_a", escaped.Id);
        Assert.True(File.Exists(Path.Combine(outDir.Path, escaped.Image)));
        Assert.Single(result.Records, r => r.Source == @"plain\name.png");
        Assert.Equal(5, result.Records.Count);
    }

    [Fact]
    public void Bad_masks_and_face_boxes_are_warnings_and_the_image_is_kept()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        File.WriteAllBytes(src.File("good1.mask.png"), DataTestFiles.Png(10, 10, SKColors.White));
        File.WriteAllText(src.File("good2.face.txt"), "0.5 0.5 0.9");
        var problems = Build(src, outDir, out var result);
        Assert.Equal(ProblemSeverity.Warning, problems["good1.mask.png"].Severity);
        Assert.Equal("bad_mask", problems["good1.mask.png"].Code);
        Assert.Equal("bad_face_box", problems["good2.face.txt"].Code);
        Assert.Null(result.Records.Single(r => r.Id == "good1").Mask);
        Assert.Null(result.Records.Single(r => r.Id == "good2").FaceBox);
    }

    static readonly BuildOptions NoSplits = new() { UnseenFraction = 0, HeldoutFraction = 0 };

    /// <summary>Every file under a folder (relative path -> SHA-256), to compare a folder byte for byte before and after.</summary>
    static SortedDictionary<string, string> Snapshot(string dir) =>
        new(Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))), StringComparer.Ordinal);

    static void AssertNoStagingBeside(string dir)
    {
        foreach (var suffix in new[] { ".new", ".ready", ".old" }) Assert.False(Directory.Exists(dir + suffix), $"{dir}{suffix} was left behind");
    }

    [Theory]
    [InlineData("ingest")]
    [InlineData("crops")]
    public void An_interrupted_rebuild_leaves_the_earlier_dataset_byte_identical_and_a_later_build_succeeds(string stage)
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        var before = Snapshot(outDir.Path);
        // The new source differs from the old one in every image, so a half-done rebuild in place would show.
        for (int i = 0; i < 3; i++) DataTestFiles.WriteFigure(src.Path, $"good{i}", GoodTags, new SKColor(30, 40, 220), offset: i + 3);
        for (int i = 3; i < 8; i++) DataTestFiles.WriteFigure(src.Path, $"more{i}", GoodTags, Red, offset: i + 3);

        using var cancel = new CancellationTokenSource();
        var progress = new InlineProgress(p => { if (p.Stage == stage && p.Done >= 2) cancel.Cancel(); });
        var e = Assert.ThrowsAny<OperationCanceledException>(() => DatasetBuilder.Build(src.Path, outDir.Path, NoSplits, progress, cancel.Token));
        Assert.Contains("earlier dataset", e.Message);
        Assert.Equal(before, Snapshot(outDir.Path));
        AssertNoStagingBeside(outDir.Path);

        var rebuilt = DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        Assert.Equal(8, rebuilt.Records.Count);
        Assert.Contains(rebuilt.Notes, n => n.Contains("replaced the earlier dataset"));
        Assert.Equal(8, Directory.GetFiles(Path.Combine(outDir.Path, DatasetLayout.ImagesFolder)).Length);
        AssertNoStagingBeside(outDir.Path);
    }

    [Fact]
    public void A_full_disk_during_a_rebuild_leaves_the_earlier_dataset_byte_identical_and_says_so()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        var before = Snapshot(outDir.Path);
        for (int i = 3; i < 6; i++) DataTestFiles.WriteFigure(src.Path, $"more{i}", GoodTags, Red, offset: i);
        // Fault injection: the write of the crops fails as it would on a full disk.
        var progress = new InlineProgress(p => { if (p.Stage == "crops" && p.Done >= 1) throw new IOException("No space left on device"); });
        var e = Assert.Throws<IOException>(() => DatasetBuilder.Build(src.Path, outDir.Path, NoSplits, progress));
        Assert.Contains("No space left on device", e.Message);
        Assert.Contains($"the earlier dataset in {outDir.Path} is unchanged", e.Message);
        Assert.Equal(before, Snapshot(outDir.Path));
        AssertNoStagingBeside(outDir.Path);
    }

    [Fact]
    public void A_killed_build_leaves_only_a_staging_folder_which_the_next_build_removes_and_reports()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        var before = Snapshot(outDir.Path);
        // What kill -9 in the middle of a rebuild leaves: a half-written staging folder with temporary files.
        var staging = outDir.Path + ".new";
        Directory.CreateDirectory(Path.Combine(staging, DatasetLayout.ImagesFolder));
        File.WriteAllBytes(Path.Combine(staging, DatasetLayout.ImagesFolder, ".good0.png.123.abc.tmp"), [1, 2, 3]);
        Assert.Equal(before, Snapshot(outDir.Path));

        var result = DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        Assert.Contains(result.Notes, n => n.Contains("removed " + staging) && n.Contains("interrupted"));
        Assert.Equal(before.Keys, Snapshot(outDir.Path).Keys);
        AssertNoStagingBeside(outDir.Path);
        Assert.Empty(Directory.EnumerateFiles(outDir.Path, "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void A_rebuild_killed_with_sigkill_leaves_the_earlier_dataset_byte_identical_and_the_next_build_cleans_up()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        var before = Snapshot(outDir.Path);

        // The child must still be ingesting when it is killed. A fast machine (or a test host whose thread pool is busy
        // with other tests) can let 300 images finish first, so each attempt that finishes too early adds more images.
        int added = 0;
        string? earlyFinish = null;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            int target = 300 << attempt;
            for (; added < target; added++) DataTestFiles.WriteFigure(src.Path, $"more{added:D4}", GoodTags, Red, offset: added % 40);
            earlyFinish = RunBuildAndKillOnceStaging(src.Path, outDir.Path);
            if (earlyFinish is null) break;
            // The finished build swapped its dataset in whole: that is the earlier dataset the next attempt must keep.
            Assert.True(Directory.Exists(outDir.Path));
            AssertNoStagingBeside(outDir.Path);
            before = Snapshot(outDir.Path);
        }
        if (earlyFinish is not null) Assert.Fail($"the build finished before it could be killed, three times:\n{earlyFinish}");

        Assert.Equal(before, Snapshot(outDir.Path));
        Assert.True(Directory.Exists(outDir.Path + ".new"), "the killed build left no staging folder: it wrote somewhere else");
        var result = DatasetBuilder.Build(src.Path, outDir.Path, NoSplits);
        Assert.Contains(result.Notes, n => n.StartsWith("removed " + outDir.Path + ".new", StringComparison.Ordinal));
        Assert.True(result.Records.Count > 250, $"{result.Records.Count} records");
        Assert.Equal(result.Records.Count, Directory.GetFiles(Path.Combine(outDir.Path, DatasetLayout.ImagesFolder)).Length);
        AssertNoStagingBeside(outDir.Path);
    }

    /// <summary>Runs `dataset build` in a child process and SIGKILLs it once ten images are staged; returns null when it was
    /// killed, or the child's output when it finished first.</summary>
    static string? RunBuildAndKillOnceStaging(string source, string outDir)
    {
        var cli = Path.Combine(Path.GetDirectoryName(typeof(RetriBooru.Cli.CliApp).Assembly.Location)!, "RetriBooru.Cli.dll");
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { cli, "dataset", "build", "--source", source, "--out", outDir, "--unseen-fraction", "0", "--heldout-fraction", "0" })
            start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = Task.WhenAll(process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
        var stagedImages = Path.Combine(outDir + ".new", DatasetLayout.ImagesFolder);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Polled on this thread with Thread.Sleep, not Task.Delay: a delay's continuation waits for a pool thread, and under
        // a parallel test run that wait was long enough for the whole build to finish.
        while (!process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3)
               && !(Directory.Exists(stagedImages) && Directory.EnumerateFiles(stagedImages).Take(10).Count() == 10))
            Thread.Sleep(5);
        if (process.HasExited) return string.Concat(output.GetAwaiter().GetResult());
        process.Kill(entireProcessTree: true); // SIGKILL: no handler, no cleanup
        process.WaitForExit();
        return null;
    }

    [Fact]
    public void A_build_of_a_source_inside_the_dataset_keeps_the_source()
    {
        // The synthetic layout DIR/source rebuilt with `dataset build --source DIR/source --out DIR`: the swap must carry the source over.
        using var dir = new TempDir();
        var source = dir.File("source");
        for (int i = 0; i < 3; i++) DataTestFiles.WriteFigure(source, $"good{i}", GoodTags, Red, offset: i);
        var sourceFiles = Snapshot(source);
        DatasetBuilder.Build(source, dir.Path, NoSplits);
        var result = DatasetBuilder.Build(source, dir.Path, NoSplits);
        Assert.Equal(3, result.Records.Count);
        Assert.Equal(sourceFiles, Snapshot(source));
        AssertNoStagingBeside(dir.Path);
    }

    [Fact]
    public void Output_inside_the_source_is_refused()
    {
        using var src = SourceWithGoodImages();
        var e = Assert.Throws<ArgumentException>(() => DatasetBuilder.Build(src.Path, src.File("out"), new BuildOptions()));
        Assert.Contains("inside the source", e.Message);
    }

    [Fact]
    public void A_non_empty_folder_that_is_not_a_dataset_is_never_written_into()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        Directory.CreateDirectory(outDir.File("images"));
        File.WriteAllText(outDir.File("images/holiday.jpg"), "user data");
        var e = Assert.Throws<IOException>(() => DatasetBuilder.Build(src.Path, outDir.Path, new BuildOptions()));
        Assert.Contains("not a dataset", e.Message);
        Assert.True(File.Exists(outDir.File("images/holiday.jpg")));
    }

    sealed class InlineProgress(Action<DatasetProgress> action) : IProgress<DatasetProgress>
    {
        public void Report(DatasetProgress value) { lock (this) action(value); }
    }
}
