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

    [Fact]
    public void An_interrupted_build_leaves_the_previous_dataset_intact_and_no_half_written_file()
    {
        using var src = SourceWithGoodImages();
        using var outDir = new TempDir();
        DatasetBuilder.Build(src.Path, outDir.Path, new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0 });
        var manifestPath = Path.Combine(outDir.Path, DatasetLayout.ManifestPath("b"));
        var before = File.ReadAllBytes(manifestPath);
        var recordsBefore = File.ReadAllBytes(Path.Combine(outDir.Path, DatasetLayout.RecordsFile));
        for (int i = 3; i < 8; i++) DataTestFiles.WriteFigure(src.Path, $"more{i}", GoodTags, Red, offset: i);

        using var cancel = new CancellationTokenSource();
        var progress = new InlineProgress(p => { if (p.Stage == "ingest" && p.Done >= 2) cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            DatasetBuilder.Build(src.Path, outDir.Path, new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0 }, progress, cancel.Token));
        Assert.Equal(before, File.ReadAllBytes(manifestPath));
        Assert.Equal(recordsBefore, File.ReadAllBytes(Path.Combine(outDir.Path, DatasetLayout.RecordsFile)));
        Assert.Empty(Directory.EnumerateFiles(outDir.Path, "*.tmp", SearchOption.AllDirectories));
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
