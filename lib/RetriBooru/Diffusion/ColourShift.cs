using RetriBooru.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>
/// Training-time recolouring that turns a training character into a new one: with probability p an example's figure
/// (its mask) and all of its reference crops are hue-rotated by one shared random angle about the grey axis of RGB.
/// The colours a reference shows still say what the target wears, but the face no longer says which training
/// character's palette to recall, so the branch must copy colours rather than recognise identities (issue #16: a
/// branch that recognises its 12 training characters does nothing for unseen ones). The background stays as drawn,
/// so the prompted scene keeps its colours. A rotation about the grey axis keeps each pixel's grey level and its
/// distance from grey; values that leave [-1, 1] are clamped.
/// </summary>
public static class ColourShift
{
    /// <summary>
    /// The 3x3 matrix rotating RGB by <paramref name="angle"/> radians about (1, 1, 1) (Rodrigues' formula), as
    /// float64 [3, 3]; it maps grey to itself in [0, 1] and [-1, 1] alike, because the grey axis passes through both
    /// ranges' origins.
    /// </summary>
    public static double[,] Rotation(double angle)
    {
        double c = Math.Cos(angle), s = Math.Sin(angle), k = 1 / Math.Sqrt(3), t = (1 - c) / 3;
        // R = c I + s [k]x + (1 - c) k k^T with k = (1, 1, 1) / sqrt 3.
        return new[,]
        {
            { c + t, t - s * k, t + s * k },
            { t + s * k, c + t, t - s * k },
            { t - s * k, t + s * k, c + t },
        };
    }

    /// <summary>
    /// Recoloured copies of a batch: <paramref name="images"/> [B, 3, H, W] in [-1, 1], each example's figure mask
    /// ([1, H, W], null = the whole picture is figure) and reference crops. Draws two float64 uniforms per example from
    /// <paramref name="generator"/> (apply?, angle) in example order; probability 0 returns the inputs and draws nothing,
    /// so runs without the shift keep every random number. New tensors land in the caller's dispose scope.
    /// </summary>
    public static (Tensor Images, IReadOnlyList<IReadOnlyList<ReferenceCrop>> References) Apply(Tensor images, IReadOnlyList<Tensor?> masks,
        IReadOnlyList<IReadOnlyList<ReferenceCrop>> references, double probability, Generator generator)
    {
        if (probability is < 0 or > 1 || double.IsNaN(probability))
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "colour shift probability must be in [0, 1]");
        long count = images.shape[0];
        if (masks.Count != count || references.Count != count)
            throw new ArgumentException($"colour shift: {count} images but {masks.Count} masks and {references.Count} reference lists");
        if (probability == 0 || count == 0) return (images, references);
        var draws = rand([count, 2], generator: generator, dtype: ScalarType.Float64).data<double>().ToArray();
        var shiftedImages = new List<Tensor>((int)count);
        var shiftedReferences = new List<IReadOnlyList<ReferenceCrop>>((int)count);
        for (int i = 0; i < count; i++)
        {
            var image = images[i];
            if (draws[i * 2] >= probability)
            {
                shiftedImages.Add(image);
                shiftedReferences.Add(references[i]);
                continue;
            }
            var rotation = tensor(Rotation(2 * Math.PI * draws[i * 2 + 1]), dtype: image.dtype, device: image.device);
            var rotated = Rotate(image, rotation);
            // Blend through the mask: image + m (rotated - image), with no implicit Scalar temporaries.
            shiftedImages.Add(masks[i] is { } mask ? image.Plus(rotated.sub(image).mul(mask.to(image.device))) : rotated);
            shiftedReferences.Add(references[i].Select(crop => crop with { Image = Rotate(crop.Image, rotation.to(crop.Image.device)) }).ToList());
        }
        return (stack(shiftedImages), shiftedReferences);
    }

    /// <summary>Each pixel of a [3, H, W] image multiplied by the 3x3 rotation, clamped to [-1, 1].</summary>
    static Tensor Rotate(Tensor image, Tensor rotation)
    {
        long height = image.shape[1], width = image.shape[2];
        return rotation.matmul(image.reshape(3, height * width)).reshape(3, height, width).Clamped(-1, 1);
    }
}
