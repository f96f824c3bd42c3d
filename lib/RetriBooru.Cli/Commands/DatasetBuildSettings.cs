using RetriBooru.Settings;
using System.ComponentModel;
using RetriBooru.Data;
using RetriBooru.Imaging;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>Options shared by `dataset build` and `dataset synth`: how references, splits and checks are made.</summary>
public class DatasetBuildSettings : CommandSettings
{
    [CommandOption("--face-refs <N>")]
    [Description("Face references per target (default 2).")]
    [DefaultValue(2)]
    public int FaceReferences { get; init; } = 2;

    [CommandOption("--clothes-refs <N>")]
    [Description("Clothes references per target (default 2).")]
    [DefaultValue(2)]
    public int ClothesReferences { get; init; } = 2;

    [CommandOption("--scheme <SCHEME>")]
    [Description("Manifests to write: b (leakage-free, default), a (crops of the target, leakage study only) or both.")]
    [DefaultValue("b")]
    public string Scheme { get; init; } = "b";

    [CommandOption("--near-dup-threshold <BITS>")]
    [Description("pHash Hamming distance (of 64 bits) at or under which an image is a near-duplicate of the target (default 14).")]
    [DefaultValue(PerceptualHash.DefaultThreshold)]
    public int NearDuplicateThreshold { get; init; } = PerceptualHash.DefaultThreshold;

    [CommandOption("--unseen-fraction <F>")]
    [Description("Fraction of characters held out entirely (split 'unseen'; default 0.333).")]
    [DefaultValue(1.0 / 3)]
    public double UnseenFraction { get; init; } = 1.0 / 3;

    [CommandOption("--heldout-fraction <F>")]
    [Description("Fraction of each seen character's images held out (split 'heldout'; default 0.1).")]
    [DefaultValue(0.1)]
    public double HeldoutFraction { get; init; } = 0.1;

    [CommandOption("--crop-size <PX>")]
    [Description("Side of the square reference crops; 0 = the source image's width (default).")]
    [DefaultValue(0)]
    public int CropSize { get; init; }

    [CommandOption("--max-pixels <N>")]
    [Description("Refuse images whose header claims more pixels (decompression bombs; default 50,000,000).")]
    [DefaultValue(ImageProbe.DefaultMaxPixels)]
    public long MaxPixels { get; init; } = ImageProbe.DefaultMaxPixels;

    public BuildOptions ToBuildOptions(long seed) => new()
    {
        Seed = seed,
        FaceReferences = FaceReferences,
        ClothesReferences = ClothesReferences,
        Schemes = Scheme switch
        {
            "a" => [ReferenceScheme.A],
            "b" => [ReferenceScheme.B],
            "both" or "ab" => [ReferenceScheme.A, ReferenceScheme.B],
            _ => throw new ArgumentException($"--scheme must be a, b or both, not '{Scheme}'"),
        },
        NearDuplicateThreshold = NearDuplicateThreshold,
        UnseenFraction = UnseenFraction,
        HeldoutFraction = HeldoutFraction,
        CropSize = CropSize,
        MaxPixels = MaxPixels,
    };

    public override ValidationResult Validate()
    {
        try { ToBuildOptions(0).Validate(); }
        catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
        return ValidationResult.Success();
    }
}
