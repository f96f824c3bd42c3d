using RetriBooru.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>
/// Training-time augmentation of reference crops that keeps their colours: a mirror image half of the time and a random
/// square crop resized back to full size, so where things sit in a reference says little about where they go in the
/// target. Issue #16 names it as a lever for copying what references show instead of their layout. Strength a:
/// a crop keeps between (1 - a) and all of each side. Pixel values are only moved and linearly interpolated, never
/// recoloured: a one-colour reference stays that colour (up to float rounding).
/// </summary>
public static class ReferenceAugmentation
{
    public const double MaxStrength = 0.9;

    /// <summary>
    /// Augmented copies of each crop ([C, H, W] tensors), drawing four uniforms per crop from <paramref name="generator"/>
    /// (flip, side, x, y) in crop order. Strength 0 returns the crops themselves and draws nothing, so a run without
    /// augmentation keeps every random number it had before. New tensors land in the caller's dispose scope.
    /// </summary>
    public static IReadOnlyList<ReferenceCrop> Apply(IReadOnlyList<ReferenceCrop> crops, double strength, Generator generator)
    {
        if (strength is < 0 or > MaxStrength || double.IsNaN(strength))
            throw new ArgumentOutOfRangeException(nameof(strength), strength, $"reference augmentation strength must be in [0, {MaxStrength}]");
        if (strength == 0 || crops.Count == 0) return crops;
        var draws = rand([crops.Count, 4], generator: generator, dtype: ScalarType.Float64).data<double>().ToArray();
        var result = new List<ReferenceCrop>(crops.Count);
        for (int i = 0; i < crops.Count; i++)
        {
            var image = crops[i].Image;
            long height = image.shape[1], width = image.shape[2];
            double keep = 1 - strength * draws[i * 4 + 1];
            long cropHeight = Math.Clamp((long)Math.Round(height * keep), 1, height), cropWidth = Math.Clamp((long)Math.Round(width * keep), 1, width);
            long y = Math.Min(height - cropHeight, (long)(draws[i * 4 + 3] * (height - cropHeight + 1)));
            long x = Math.Min(width - cropWidth, (long)(draws[i * 4 + 2] * (width - cropWidth + 1)));
            // A full-size "crop" is the image itself (the batcher copies it when it stacks the batch).
            var resized = cropHeight == height && cropWidth == width ? image
                : nn.functional.interpolate(image.narrow(1, y, cropHeight).narrow(2, x, cropWidth).unsqueeze(0), [height, width],
                    mode: InterpolationMode.Bilinear, align_corners: false).squeeze(0);
            var augmented = draws[i * 4] < 0.5 ? resized.flip(2) : resized;
            result.Add(crops[i] with { Image = augmented });
        }
        return result;
    }
}
